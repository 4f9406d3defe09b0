import { createHash } from 'node:crypto';
import {
  chmodSync,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { createInbox } from '@nats-io/transport-node';
import type { Command } from 'commander';
import { z } from 'zod';
import { connectNats, drainNats, redactUrl, startEmbeddedNats, type NatsConnection } from '#libs/nats';
import { CliError, findInstance, type Instance } from '../instance.js';

/**
 * `runway admin backup|restore`: every JetStream stream of the account (EVENTS, LOGS, the object
 * stores and KV buckets are streams too) through nats-server's own snapshot API
 * (`$JS.API.STREAM.SNAPSHOT` / `RESTORE`, present since 2.2: sequences, headers, deleted messages
 * and consumer positions come back exactly), plus the key and credential files of the data dir.
 * PostgreSQL is not in a backup: every read model is rebuilt from the restored log. See
 * docs/durability.md.
 */

export const BACKUP_FORMAT = 'runway-backup/1';
const CHUNK = 128 * 1024;
const API_TIMEOUT_MS = 30_000;
/** A snapshot that sends nothing for this long has failed. */
const IDLE_TIMEOUT_MS = 60_000;
/** Directories of the data dir that hold bulk or derived data, not keys: never in a backup. */
const SKIPPED_DIRS = new Set(['nats', 'pg', 'work', 'workspaces', 'cache']);

const apiError = z.object({ code: z.number(), err_code: z.number().optional(), description: z.string() });
/** Stream config and state as the server gives them: kept whole, handed back on restore. */
const streamConfig = z.looseObject({ name: z.string().min(1) });
const streamState = z.looseObject({ messages: z.number(), bytes: z.number(), last_seq: z.number() });
const snapshotResponse = z.object({
  error: apiError.optional(),
  config: streamConfig.optional(),
  state: streamState.optional(),
});
const restoreResponse = z.object({ error: apiError.optional(), deliver_subject: z.string().optional() });
const restoreDone = z.looseObject({ error: apiError.optional() });

const manifestSchema = z.object({
  format: z.literal(BACKUP_FORMAT),
  createdAt: z.string(),
  natsServer: z.string(),
  streams: z.array(
    z.object({
      name: z.string().regex(/^[A-Za-z0-9_-]+$/),
      file: z.string().regex(/^streams\/[A-Za-z0-9_-]+\.snapshot$/),
      bytes: z.number().int().min(0),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      config: streamConfig,
      state: streamState,
    }),
  ),
  files: z.array(
    z.object({
      path: z.string().min(1),
      bytes: z.number().int().min(0),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      mode: z.number().int().min(0).max(0o777),
    }),
  ),
});
export type BackupManifest = z.infer<typeof manifestSchema>;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function apiFailure(what: string, e: z.infer<typeof apiError>): CliError {
  return new CliError(`${what}: ${e.description} (code ${e.code}${e.err_code ? `, ${e.err_code}` : ''})`);
}

/** Streams in backup order: the event log first, so every blob an event references is in the later snapshots. */
export function backupOrder(names: readonly string[], eventsStream: string): string[] {
  return [...names].sort((a, b) =>
    a === eventsStream ? -1 : b === eventsStream ? 1 : a < b ? -1 : a > b ? 1 : 0,
  );
}

async function snapshotStream(
  nc: NatsConnection,
  name: string,
  file: string,
): Promise<BackupManifest['streams'][number]> {
  const inbox = createInbox();
  const out = createWriteStream(file, { mode: 0o600 });
  const hash = createHash('sha256');
  let bytes = 0;
  let settle: { ok: () => void; fail: (e: Error) => void } | undefined;
  const done = new Promise<void>((ok, fail) => (settle = { ok, fail }));
  let idle: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () => settle?.fail(new CliError(`snapshot of ${name}: nothing received for ${IDLE_TIMEOUT_MS} ms`)),
      IDLE_TIMEOUT_MS,
    );
  };
  const sub = nc.subscribe(inbox, {
    callback: (err, m) => {
      if (err) return settle?.fail(err);
      arm();
      if (m.data.length === 0) {
        // End of the snapshot; an error status says it failed.
        const code = m.headers?.code ?? 0;
        if (code >= 400) return settle?.fail(new CliError(`snapshot of ${name}: ${m.headers?.description}`));
        return settle?.ok();
      }
      hash.update(m.data);
      bytes += m.data.length;
      // Acknowledge a chunk once it is written: the server's flow control waits for these.
      out.write(Buffer.from(m.data), (e) => {
        if (e) settle?.fail(e);
        else if (m.reply) m.respond();
      });
    },
  });
  try {
    await nc.flush();
    arm();
    const reply = await nc.request(
      `$JS.API.STREAM.SNAPSHOT.${name}`,
      JSON.stringify({ deliver_subject: inbox, chunk_size: CHUNK, no_consumers: false }),
      { timeout: API_TIMEOUT_MS },
    );
    const res = snapshotResponse.parse(reply.json());
    if (res.error) throw apiFailure(`snapshot of ${name}`, res.error);
    if (!res.config || !res.state || res.config.name !== name)
      throw new CliError(`snapshot of ${name}: the server's answer has no stream config`);
    await done;
    await new Promise<void>((ok, fail) => out.end((e?: Error | null) => (e ? fail(e) : ok())));
    return {
      name,
      file: relative(dirname(dirname(file)), file)
        .split(sep)
        .join('/'),
      bytes,
      sha256: hash.digest('hex'),
      config: res.config,
      state: res.state,
    };
  } finally {
    clearTimeout(idle);
    sub.unsubscribe();
    out.destroy();
  }
}

async function restoreStream(nc: NatsConnection, dir: string, s: BackupManifest['streams'][number]) {
  const reply = await nc.request(
    `$JS.API.STREAM.RESTORE.${s.name}`,
    JSON.stringify({ config: s.config, state: s.state }),
    { timeout: API_TIMEOUT_MS },
  );
  const res = restoreResponse.parse(reply.json());
  if (res.error) throw apiFailure(`restore of ${s.name}`, res.error);
  if (!res.deliver_subject) throw new CliError(`restore of ${s.name}: the server gave no subject to send to`);
  for await (const chunk of createReadStream(join(dir, s.file), { highWaterMark: CHUNK })) {
    if (!(chunk instanceof Buffer)) throw new CliError(`restore of ${s.name}: unreadable snapshot file`);
    const ack = await nc.request(res.deliver_subject, chunk, { timeout: API_TIMEOUT_MS });
    if (ack.data.length > 0) {
      const e = restoreDone.parse(ack.json());
      if (e.error) throw apiFailure(`restore of ${s.name}`, e.error);
    }
  }
  const end = await nc.request(res.deliver_subject, new Uint8Array(0), { timeout: 10 * 60_000 });
  const fin = restoreDone.parse(end.json());
  if (fin.error) throw apiFailure(`restore of ${s.name}`, fin.error);
}

/** Key and credential files of the data dir: its regular files, and those one folder down (not nats/, pg/, work dirs). */
export function dataDirFiles(dataDir: string): string[] {
  if (!existsSync(dataDir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dataDir, { withFileTypes: true })) {
    if (e.isFile()) out.push(e.name);
    else if (e.isDirectory() && !SKIPPED_DIRS.has(e.name))
      for (const f of readdirSync(join(dataDir, e.name), { withFileTypes: true }))
        if (f.isFile()) out.push(`${e.name}/${f.name}`);
  }
  return out.sort();
}

export interface BackupResult {
  manifest: BackupManifest;
  dir: string;
}

/** Writes a backup of the account's streams and the data dir's key files into `dir` (new or empty). */
export async function backup(
  nc: NatsConnection,
  opts: { dir: string; dataDir: string; eventsStream: string },
) {
  const dir = resolve(opts.dir);
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new CliError(`${dir} is not empty: a backup goes into a new or empty directory`, 2);
  mkdirSync(join(dir, 'streams'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'data'), { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const jsm = await jetstreamManager(nc);
  const names: string[] = [];
  for await (const n of jsm.streams.names()) names.push(n);
  const streams: BackupManifest['streams'] = [];
  for (const name of backupOrder(names, opts.eventsStream))
    streams.push(await snapshotStream(nc, name, join(dir, 'streams', `${name}.snapshot`)));
  const files: BackupManifest['files'] = [];
  for (const path of dataDirFiles(opts.dataDir)) {
    const src = join(opts.dataDir, path);
    const content = readFileSync(src);
    const target = join(dir, 'data', path);
    mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    writeFileSync(target, content, { mode: 0o600 });
    files.push({ path, bytes: content.length, sha256: sha256(content), mode: statSync(src).mode & 0o777 });
  }
  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    createdAt: new Date().toISOString(),
    natsServer: nc.info?.version ?? 'unknown',
    streams,
    files,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
  return { manifest, dir };
}

/** Reads and checks a backup: its manifest, and every file against its recorded size and hash. */
export function readBackup(dir: string): BackupManifest {
  const file = join(dir, 'manifest.json');
  if (!existsSync(file)) throw new CliError(`${dir}: no manifest.json, not a Runway backup`, 2);
  const parsed = manifestSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success)
    throw new CliError(`${file}: not a ${BACKUP_FORMAT} manifest (${parsed.error.issues[0]?.message})`, 2);
  const m = parsed.data;
  const check = (rel: string, bytes: number, hash: string) => {
    const p = resolve(dir, rel);
    if (!p.startsWith(resolve(dir) + sep)) throw new CliError(`${rel}: leaves the backup directory`, 2);
    const b = existsSync(p) ? readFileSync(p) : undefined;
    if (!b || b.length !== bytes || sha256(b) !== hash)
      throw new CliError(`${rel}: missing or damaged (size or SHA-256 differs from the manifest)`, 2);
  };
  for (const s of m.streams) check(s.file, s.bytes, s.sha256);
  for (const f of m.files) check(`data/${f.path}`, f.bytes, f.sha256);
  return m;
}

/**
 * Restores a backup into a fresh install: the streams must not exist (with `force`, existing ones
 * of the same names are deleted first), key files are written into the data dir (an existing file
 * with other content is an error without `force`). Everything is checked before anything changes.
 */
export async function restore(
  nc: NatsConnection,
  opts: { dir: string; dataDir: string; force: boolean },
): Promise<BackupManifest> {
  const dir = resolve(opts.dir);
  const m = readBackup(dir);
  const jsm = await jetstreamManager(nc);
  const existing = new Set<string>();
  for await (const n of jsm.streams.names()) existing.add(n);
  const clashing = m.streams.filter((s) => existing.has(s.name)).map((s) => s.name);
  if (clashing.length > 0 && !opts.force)
    throw new CliError(
      `streams ${clashing.join(', ')} exist already: restore into a fresh install (stop Runway, use a new data dir or NATS server), or pass --force to replace them`,
      2,
    );
  const differing = m.files.filter((f) => {
    const p = join(opts.dataDir, f.path);
    return existsSync(p) && sha256(readFileSync(p)) !== f.sha256;
  });
  if (differing.length > 0 && !opts.force)
    throw new CliError(
      `${differing.map((f) => f.path).join(', ')} in ${opts.dataDir} differ from the backup: restore into a fresh data dir, or pass --force to overwrite them`,
      2,
    );
  for (const name of clashing) await jsm.streams.delete(name);
  for (const s of m.streams) await restoreStream(nc, dir, s);
  for (const f of m.files) {
    const target = join(opts.dataDir, f.path);
    mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    writeFileSync(target, readFileSync(join(dir, 'data', f.path)), { mode: f.mode });
    chmodSync(target, f.mode);
  }
  return m;
}

/**
 * A connection to the instance's NATS. When Runway is stopped and runs its own nats-server (no
 * NATS_URL), that server is started on the data dir for the time of the command.
 */
async function withJetStream<T>(instance: Instance, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  let server: Awaited<ReturnType<typeof startEmbeddedNats>> | undefined;
  let nc: NatsConnection;
  try {
    // Snapshots and restores of every stream: the services' user (the admin user only reads).
    nc = await connectNats({
      url: instance.serviceNatsUrl,
      name: 'runway-cli-backup',
      reconnectForever: false,
    });
  } catch {
    if (instance.config.nats.url)
      throw new CliError(`cannot reach NATS at ${redactUrl(instance.natsUrl)} (NATS_URL)`);
    server = await startEmbeddedNats({
      natsDir: join(instance.config.dataDir, 'nats'),
      port: instance.config.nats.port,
      nodes: instance.config.nats.clusterNodes,
    });
    nc = await connectNats({ url: server.url, name: 'runway-cli-backup', reconnectForever: false });
  }
  try {
    return await fn(nc);
  } finally {
    await drainNats(nc);
    await server?.stop();
  }
}

const human = (n: number) =>
  n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;

export function registerBackup(admin: Command): void {
  admin
    .command('backup <dir>')
    .description(
      'copy every JetStream stream (events, logs, object stores, KV buckets) and the key files of the data dir into <dir>',
    )
    .action(async (dir: string) => {
      const instance = findInstance();
      const { manifest } = await withJetStream(instance, (nc) =>
        backup(nc, { dir, dataDir: instance.config.dataDir, eventsStream: instance.config.events.stream }),
      );
      for (const s of manifest.streams)
        process.stdout.write(`stream ${s.name}: ${s.state.messages} messages, ${human(s.bytes)} snapshot\n`);
      for (const f of manifest.files) process.stdout.write(`file ${f.path}\n`);
      process.stdout.write(
        `backup written to ${resolve(dir)} (it holds the master key: keep it as safe as the data dir)\n`,
      );
    });
  admin
    .command('restore <dir>')
    .description(
      'restore a backup into a fresh install (stopped, empty database); projections rebuild from the log at the next start',
    )
    .option('--force', 'replace streams and key files that exist already')
    .action(async (dir: string, opts: { force?: boolean }) => {
      const instance = findInstance();
      const m = await withJetStream(instance, (nc) =>
        restore(nc, { dir, dataDir: instance.config.dataDir, force: opts.force ?? false }),
      );
      for (const s of m.streams)
        process.stdout.write(`stream ${s.name}: ${s.state.messages} messages restored\n`);
      for (const f of m.files) process.stdout.write(`file ${f.path} restored\n`);
      process.stdout.write(
        'restored: start Runway on an empty database; every read model is rebuilt from the restored log\n',
      );
    });
}
