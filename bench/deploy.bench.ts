/**
 * `npm run bench -- deploy`: deploying a generated 2,000-file, 50 MB workspace to a whole Runway
 * (gateway + deployments service, in this process, on the nats-server + PostgreSQL that
 * scripts/bench.mjs started) the way the runway CLI does it: hash the files, plan, PUT the missing
 * blobs (8 in flight), commit. Then: re-deploy after changing one file, re-deploy unchanged. For
 * comparison, the dlt CLI's path: POST the whole 50 MB tarball. Each scenario runs in a fresh
 * workspace per round; the median round is reported. Prints ONE table.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { buildPackage, writeTar } from '#libs/archive';
import { startTestStack, type TestStack } from '../test/support/stack.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const FILES = 2_000;
const TOTAL_BYTES = 50 * 1024 * 1024;
const IN_FLIGHT = 8;

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

interface LocalFile {
  path: string;
  content: Buffer;
}

/** 2,000 files, 50 MB: most of them small source-like files, a few large data files. */
function generateWorkspace(): LocalFile[] {
  const files: LocalFile[] = [];
  const large = 40;
  const largeSize = Math.floor((TOTAL_BYTES * 0.6) / large);
  const smallSize = Math.floor((TOTAL_BYTES * 0.4) / (FILES - large));
  for (let i = 0; i < FILES; i++) {
    const isLarge = i < large;
    const path = isLarge
      ? `data/part-${String(i).padStart(3, '0')}.parquet`
      : `pipelines/pkg_${i % 50}/module_${String(i).padStart(4, '0')}.py`;
    files.push({ path, content: randomBytes(isLarge ? largeSize : smallSize) });
  }
  return files;
}

interface Outcome {
  ms: number;
  hashMs: number;
  uploadedFiles: number;
  uploadedBytes: number;
  requests: number;
  version: number;
  created: boolean;
}

class Client {
  constructor(
    private readonly stack: TestStack,
    readonly ws: string,
  ) {}

  private async req(
    method: string,
    path: string,
    body?: unknown,
    raw?: Uint8Array,
    rawType = 'application/octet-stream',
  ): Promise<unknown> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.stack.adminToken}` };
    let payload: RequestInit['body'];
    if (raw) {
      headers['content-type'] = rawType;
      payload = raw;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await fetch(`${this.stack.url}/api/v1/workspaces/${this.ws}${path}`, {
      method,
      headers,
      body: payload,
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text);
  }

  /** What `runway deploy` does; `batchBytes` > 0 sends the missing blobs as tar batches of about that size. */
  async sync(files: LocalFile[], batchBytes = 0): Promise<Outcome> {
    const t0 = performance.now();
    const refs = files.map((f) => ({ path: f.path, size: f.content.length, sha256: sha256(f.content) }));
    const hashMs = performance.now() - t0;
    const { missing } = (await this.req('POST', '/deployments/sync/plan', { files: refs })) as {
      missing: string[];
    };
    const byHash = new Map(files.map((f, i) => [refs[i]!.sha256, f]));
    let uploadedBytes = 0;
    let requests = 2;
    if (batchBytes > 0) {
      const batches: string[][] = [];
      let current: string[] = [];
      let size = 0;
      for (const h of missing) {
        const n = byHash.get(h)!.content.length;
        if (current.length > 0 && size + n > batchBytes) {
          batches.push(current);
          current = [];
          size = 0;
        }
        current.push(h);
        size += n;
      }
      if (current.length) batches.push(current);
      await Promise.all(
        Array.from({ length: 2 }, async () => {
          for (let b = batches.shift(); b; b = batches.shift()) {
            const tar = writeTar(
              b.map((h) => ({ name: h, type: 'file' as const, data: byHash.get(h)!.content })),
            );
            await this.req('POST', '/blobs', undefined, tar, 'application/x-tar');
            uploadedBytes += b.reduce((n, h) => n + byHash.get(h)!.content.length, 0);
            requests++;
          }
        }),
      );
    } else {
      const queue = [...missing];
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          for (let h = queue.shift(); h; h = queue.shift()) {
            const f = byHash.get(h)!;
            await this.req('PUT', `/blobs/${h}`, undefined, f.content);
            uploadedBytes += f.content.length;
            requests++;
          }
        }),
      );
    }
    const d = (await this.req('POST', '/deployments/sync/commit', { files: refs })) as {
      version: number;
      created: boolean;
    };
    return {
      ms: performance.now() - t0,
      hashMs,
      uploadedFiles: missing.length,
      uploadedBytes,
      requests,
      version: d.version,
      created: d.created,
    };
  }

  /** What `dlt runtime deploy` does (the tarball built beforehand, as the CLI builds it in memory). */
  async postArchive(archive: Buffer): Promise<Outcome> {
    const t0 = performance.now();
    const form = new FormData();
    form.append(
      'file',
      new Blob([new Uint8Array(archive)], { type: 'application/x-tar' }),
      'workspace.tar.gz',
    );
    const res = await fetch(`${this.stack.url}/api/v1/workspaces/${this.ws}/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.stack.adminToken}` },
      body: form,
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`POST deployments: ${res.status} ${text.slice(0, 300)}`);
    const d = JSON.parse(text) as { version: number };
    return {
      ms: performance.now() - t0,
      hashMs: 0,
      uploadedFiles: FILES,
      uploadedBytes: archive.length,
      requests: 1,
      version: d.version,
      created: true,
    };
  }
}

async function newWorkspace(stack: TestStack, name: string): Promise<string> {
  const r = await stack.call('POST', '/api/v1/workspaces', { name }, undefined, {
    'idempotency-key': `bench-${name}-${randomBytes(4).toString('hex')}`,
  });
  if (r.status !== 201) throw new Error(`create workspace: ${r.text}`);
  const id = (r.json as { id: string }).id;
  while ((await stack.call('GET', `/api/v1/workspaces/${id}`)).status !== 200)
    await new Promise((res) => setTimeout(res, 20));
  return id;
}

const stack = await startTestStack({ RUNWAY_BLOB_GC_INTERVAL_SECONDS: '0' });
const rows: { name: string; files: string; bytes: string; requests: string; ms: string; detail: string }[] =
  [];
try {
  log(`generating ${FILES} files, ${TOTAL_BYTES / 1024 / 1024} MB`);
  const base = generateWorkspace();
  // The content hash reads files in path order; the service resumes from a cached midstate before
  // the first changed path. So: one file changed in the middle of that order (typical), and the
  // first file in that order (worst case: every content is read again).
  const order = base.map((f) => f.path).sort();
  const edit = (files: LocalFile[], path: string) =>
    files.map((f) =>
      f.path === path ? { path: f.path, content: Buffer.concat([f.content, Buffer.from('# changed\n')]) } : f,
    );
  const changed = edit(base, order[Math.floor(order.length / 2)]!);
  const changedFirst = edit(changed, order[0]!);
  const t = performance.now();
  const archive = buildPackage(
    base.map((f) => ({ path: f.path, content: f.content })),
    { level: 1 },
  );
  const buildMs = performance.now() - t;
  log(
    `tarball for the dlt path: ${(archive.length / 1024 / 1024).toFixed(1)} MB (built in ${buildMs.toFixed(0)} ms, not timed below)`,
  );

  const scenarios: Record<string, Outcome[]> = {
    first: [],
    one: [],
    same: [],
    oneFirst: [],
    batched: [],
    post: [],
    postSame: [],
  };
  for (let round = 0; round < ROUNDS; round++) {
    log(`round ${round + 1}/${ROUNDS}`);
    const c = new Client(stack, await newWorkspace(stack, `sync${round}`));
    scenarios.first!.push(await c.sync(base));
    scenarios.one!.push(await c.sync(changed));
    scenarios.same!.push(await c.sync(changed));
    scenarios.oneFirst!.push(await c.sync(changedFirst));
    const b = new Client(stack, await newWorkspace(stack, `batch${round}`));
    scenarios.batched!.push(await b.sync(base, 8 * 1024 * 1024));
    const p = new Client(stack, await newWorkspace(stack, `post${round}`));
    scenarios.post!.push(await p.postArchive(archive));
    scenarios.postSame!.push(await p.postArchive(archive));
  }
  const mb = (n: number) =>
    n >= 1024 * 1024
      ? `${(n / 1024 / 1024).toFixed(1)} MB`
      : n >= 1024
        ? `${(n / 1024).toFixed(1)} KB`
        : `${n} B`;
  const add = (name: string, list: Outcome[], detail: (o: Outcome) => string) => {
    const ms = median(list.map((o) => o.ms));
    const o = list.find((x) => x.ms === ms)!;
    rows.push({
      name,
      files: String(o.uploadedFiles),
      bytes: mb(o.uploadedBytes),
      requests: String(o.requests),
      ms: `${ms.toFixed(0)} ms`,
      detail: detail(o),
    });
  };
  const v = (o: Outcome) =>
    `${o.created ? 'created' : 'no new'} version ${o.version}; client hashing ${o.hashMs.toFixed(0)} ms`;
  add('sync: first deploy (plan, PUT all, commit)', scenarios.first!, v);
  add('sync: one file changed (middle of path order)', scenarios.one!, v);
  add('sync: unchanged', scenarios.same!, v);
  add('sync: one file changed (first in path order)', scenarios.oneFirst!, v);
  add('sync: first deploy, blobs in 8 MB tar batches', scenarios.batched!, v);
  add('dlt path: POST 50 MB tarball', scenarios.post!, (o) => `version ${o.version}`);
  add(
    'dlt path: POST same tarball again',
    scenarios.postSame!,
    (o) => `version ${o.version} (the dlt CLI would skip it)`,
  );
} finally {
  await stack.stop();
}

const headers = {
  name: 'scenario (2,000 files, 50 MB)',
  files: 'files sent',
  bytes: 'bytes sent',
  requests: 'requests',
  ms: 'wall time',
  detail: 'result',
};
const cols = Object.keys(headers) as (keyof typeof headers)[];
const widths = cols.map((c) => Math.max(headers[c].length, ...rows.map((r) => r[c].length)));
const line = (r: Record<string, string>) =>
  `| ${cols.map((c, i) => (c === 'name' || c === 'detail' ? r[c]!.padEnd(widths[i]!) : r[c]!.padStart(widths[i]!))).join(' | ')} |`;
process.stdout.write(
  [
    `deploy benchmark: node ${process.version}, ${cpus().length} cores; whole Runway in-process over HTTP on loopback; median of ${ROUNDS} rounds, fresh workspace each`,
    line(headers),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
    '',
  ].join('\n'),
);
process.exit(0);
