import type { Command } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Configuration, Deployment, RunwayClient } from '#libs/client';
import { buildPackage, writeTar } from '#libs/archive';

const BATCH_BYTES = 8 * 1024 * 1024;
import { CliError } from '../instance.js';
import { table } from '../output.js';
import { boundWorkspace, client, openSession, type GlobalOptions } from '../session.js';
import { LocalWorkspace, sha256 } from '../workspace/local.js';
import { printOut } from './print.js';

const versionRow = (d: Deployment) => ({
  'Version #': d.version,
  'Created at': d.date_added,
  'File count': d.file_count,
  'Content hash': d.content_hash,
});
const configRow = (c: Configuration) => ({ ...versionRow(c), Profiles: c.profiles });

export interface SyncResult<T> {
  created: boolean;
  item: T;
  uploadedBytes: number;
  uploadedFiles: number;
}

/** Incremental code sync: plan → upload only the blobs the server lacks → commit. */
export async function syncDeployment(
  c: RunwayClient,
  wsId: string,
  ws: LocalWorkspace,
): Promise<SyncResult<Deployment>> {
  const files = ws.codeFiles().map((f) => {
    const content = readFileSync(f.abs);
    return { path: f.path, size: content.length, sha256: sha256(content), content };
  });
  if (files.length === 0)
    throw new CliError(`nothing to deploy: ${ws.root} has no files outside .dlt/ and .gitignore`);
  const refs = files.map(({ path, size, sha256: h }) => ({ path, size, sha256: h }));
  const { missing } = await c.syncPlan(wsId, refs);
  const want = new Set(missing);
  let uploadedBytes = 0;
  let uploadedFiles = 0;
  // Missing contents go up in tar batches of about 8 MB (one request each, a few in flight);
  // a file larger than that goes alone.
  const missingFiles = files.filter((f) => want.has(f.sha256) && (want.delete(f.sha256) || true));
  const batches: (typeof missingFiles)[] = [];
  let current: typeof missingFiles = [];
  let currentBytes = 0;
  for (const f of missingFiles) {
    if (current.length > 0 && currentBytes + f.size > BATCH_BYTES) {
      batches.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(f);
    currentBytes += f.size;
  }
  if (current.length > 0) batches.push(current);
  await Promise.all(
    Array.from({ length: 3 }, async () => {
      for (let b = batches.shift(); b; b = batches.shift()) {
        if (b.length === 1) await c.putBlob(wsId, b[0]!.sha256, b[0]!.content);
        else
          await c.putBlobs(
            wsId,
            writeTar(b.map((f) => ({ name: f.sha256, type: 'file' as const, data: f.content }))),
          );
        for (const f of b) {
          uploadedBytes += f.size;
          uploadedFiles += 1;
        }
      }
    }),
  );
  const res = await c.syncCommit(wsId, refs);
  return { created: res.created ?? true, item: res, uploadedBytes, uploadedFiles };
}

export async function syncConfiguration(
  c: RunwayClient,
  wsId: string,
  ws: LocalWorkspace,
): Promise<SyncResult<Configuration>> {
  const files = ws.configFiles().map((f) => ({ path: f.path, content: readFileSync(f.abs), mode: f.mode }));
  const pkg = await buildPackage(files);
  const res = await c.syncConfiguration(wsId, pkg);
  return { created: res.created ?? true, item: res, uploadedBytes: pkg.length, uploadedFiles: files.length };
}

/** `runway deployment info 3`, `runway deployment 3 info`, `runway deployment list` … */
function parseOp(args: string[], ops: string[], dflt: string): { op: string; n?: number } {
  let op: string | undefined;
  let n: number | undefined;
  for (const a of args) {
    if (/^\d+$/.test(a)) {
      if (n !== undefined) throw new CliError(`unexpected ${a}: give one version number`, 2);
      n = Number(a);
    } else if (ops.includes(a)) {
      if (op) throw new CliError(`unexpected ${a}: give one operation (${ops.join('|')})`, 2);
      op = a;
    } else throw new CliError(`unknown operation ${a}: expected ${ops.join('|')} or a version number`, 2);
  }
  return { op: op ?? dflt, n: n === 0 ? undefined : n };
}

/** The script must exist in the local workspace (exit 2 otherwise). */
export function requireLocalFile(ws: LocalWorkspace, entry: string): void {
  const abs = isAbsolute(entry) ? entry : join(ws.root, entry);
  if (!existsSync(abs) || !statSync(abs).isFile())
    throw new CliError(`entry point ${entry} not found in ${ws.root}`, 2);
}

/**
 * What `launch` and `schedule` do first: the script must exist locally, then the deployment and the
 * configuration are synced (each reported through `note`).
 */
export async function syncForJob(
  c: RunwayClient,
  wsId: string,
  ws: LocalWorkspace,
  entry: string,
  note: (m: string) => void,
): Promise<void> {
  requireLocalFile(ws, entry);
  const d = await syncDeployment(c, wsId, ws);
  note(
    d.created
      ? `Deployment version ${d.item.version} created`
      : `Deployment version ${d.item.version} is current`,
  );
  const cfg = await syncConfiguration(c, wsId, ws);
  for (const w of cfg.item.warnings ?? []) note(`warning: ${w}`);
  note(
    cfg.created
      ? `Configuration version ${cfg.item.version} created`
      : `Configuration version ${cfg.item.version} is current`,
  );
}

export function registerSync(program: Command, g: () => GlobalOptions): void {
  const say = (m: string) => {
    if (!g().json) process.stderr.write(`${m}\n`);
  };

  program
    .command('deploy')
    .description('sync the code (deployment) and the .dlt configuration of this workspace')
    .action(async () => {
      const { ws, c, wsId } = await openSession(g(), say);
      const d = await syncDeployment(c, wsId, ws);
      const cfg = await syncConfiguration(c, wsId, ws);
      for (const w of cfg.item.warnings ?? []) say(`warning: ${w}`);
      printOut(
        g(),
        {
          deployment: {
            ...d.item,
            created: d.created,
            uploaded_bytes: d.uploadedBytes,
            uploaded_files: d.uploadedFiles,
          },
          configuration: { ...cfg.item, created: cfg.created },
        },
        () =>
          [
            d.created
              ? `Deployment version ${d.item.version} created (${d.uploadedFiles} files, ${d.uploadedBytes} bytes uploaded)`
              : `No changes detected in the code: deployment version ${d.item.version} is current`,
            cfg.created
              ? `Configuration version ${cfg.item.version} created (profiles: ${cfg.item.profiles || 'default'})`
              : `No changes detected in the configuration: version ${cfg.item.version} is current`,
            'Deployment and configuration synchronized successfully',
            '',
          ].join('\n'),
      );
    });

  program
    .command('deployment')
    .description('code versions: sync | list | info [N]  (also: deployment N info)')
    .argument('[args...]', 'operation and/or version number')
    .action(async (args: string[]) => {
      const { op, n } = parseOp(args, ['sync', 'list', 'info'], 'info');
      const { ws, c, wsId } = await openSession(g(), say);
      if (op === 'sync') {
        const d = await syncDeployment(c, wsId, ws);
        printOut(g(), { ...d.item, created: d.created, uploaded_bytes: d.uploadedBytes }, () =>
          d.created
            ? table([versionRow(d.item)])
            : `No changes detected: deployment version ${d.item.version} is current\n`,
        );
      } else if (op === 'list') {
        const page = await c.listDeployments(wsId);
        printOut(g(), page.items, () =>
          page.items.length ? table(page.items.map(versionRow)) : 'No deployments found in this workspace\n',
        );
      } else {
        const d = n === undefined ? await c.latestDeployment(wsId) : await c.getDeployment(wsId, n);
        if (!d) throw new CliError('no deployment yet: run `runway deploy`');
        const files = await c.deploymentFiles(wsId, d.version).catch(() => undefined);
        printOut(
          g(),
          { ...d, files: files?.items },
          () =>
            table([versionRow(d)]) +
            (files
              ? '\n' +
                table(files.items.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256.slice(0, 16) })))
              : ''),
        );
      }
    });

  program
    .command('configuration')
    .description('configuration versions (.dlt/*.toml): sync | list | info [N]  (also: configuration N info)')
    .argument('[args...]', 'operation and/or version number')
    .action(async (args: string[]) => {
      const { op, n } = parseOp(args, ['sync', 'list', 'info'], 'info');
      const { ws, c, wsId } = await openSession(g(), say);
      if (op === 'sync') {
        const r = await syncConfiguration(c, wsId, ws);
        for (const w of r.item.warnings ?? []) say(`warning: ${w}`);
        printOut(g(), { ...r.item, created: r.created }, () =>
          r.created
            ? table([configRow(r.item)])
            : `No changes detected: configuration version ${r.item.version} is current\n`,
        );
      } else if (op === 'list') {
        const page = await c.listConfigurations(wsId);
        printOut(g(), page.items, () =>
          page.items.length
            ? table(page.items.map(configRow))
            : 'No configurations found in this workspace\n',
        );
      } else {
        const cfg = n === undefined ? await c.latestConfiguration(wsId) : await c.getConfiguration(wsId, n);
        if (!cfg) throw new CliError('no configuration yet: run `runway deploy`');
        printOut(g(), cfg, () => {
          const keys = Object.entries(cfg.profile_keys ?? {}).map(([profile, ks]) => ({
            profile,
            keys: ks.join(', '),
          }));
          return table([configRow(cfg)]) + (keys.length ? '\n' + table(keys) : '');
        });
      }
    });

  program
    .command('info')
    .description('who you are, the bound workspace, and its current deployment and configuration')
    .action(async () => {
      const ws = new LocalWorkspace();
      const c = client(g(), true, ws);
      const me = await c.me();
      const wsId = await boundWorkspace(c, ws, say);
      const [d, cfg] = await Promise.all([c.latestDeployment(wsId), c.latestConfiguration(wsId)]);
      const data = {
        user: me.email,
        api_base_url: c.apiBase,
        workspace_id: wsId,
        deployment: d ?? null,
        configuration: cfg ?? null,
      };
      printOut(g(), data, () =>
        [
          `Logged in as ${me.email} at ${c.apiBase}`,
          `Workspace ${wsId}`,
          d
            ? `Deployment version ${d.version} from ${d.date_added} (${d.file_count} files)`
            : 'No deployment yet (run `runway deploy`)',
          cfg
            ? `Configuration version ${cfg.version} from ${cfg.date_added} (profiles: ${cfg.profiles || 'default'})`
            : 'No configuration yet',
          '',
        ].join('\n'),
      );
    });
}
