import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { z } from 'zod';
import type { RunStateSummary, RunTraceSummary } from '../run/run.events.js';

/**
 * A run's beacon (docs/runs-telemetry.md): dlt sends what a pipeline did to `runtime.dlthub_dsn`
 * (`PUT {dsn}/trace` after each pipeline operation, `PUT {dsn}/state` after a load; dlt 1.26.0
 * `dlt/pipeline/platform.py`, no headers besides its user agent). The worker serves one endpoint on
 * the loopback interface (batch runs share the host's network) and gives each batch run the DSN
 * `http://127.0.0.1:<port>/beacon/v1/runs/<run id>/<token>`, the token derived from the master key.
 */

/** The largest body a beacon takes (a state carries every schema of the pipeline). */
export const MAX_BEACON_BODY_BYTES = 4 * 1024 * 1024;
/** Refusals written into one run's log at most (a forged flood cannot fill it). */
const MAX_WARNINGS = 20;

const PATH = /^\/beacon\/v1\/runs\/([0-9a-f-]{36})\/([^/]{1,200})\/([a-z_]{1,20})$/;

export type BeaconReport =
  { kind: 'trace'; trace: RunTraceSummary } | { kind: 'state'; state: RunStateSummary };

export interface BeaconRun {
  /** Stores a report; false: the run took no more (ended, or at its limit). */
  report: (r: BeaconReport) => Promise<boolean>;
  /** Masks the run's known secrets (its configuration's, and the beacon token). */
  mask: (text: string) => string;
  /** A line for the run's log (a refused request). */
  warn: (line: string) => void;
}

interface OpenRun {
  run: BeaconRun;
  inFlight: Set<Promise<void>>;
  warnings: number;
}

// What Runway reads of dlt's trace (PipelineTrace.asdict()) and state (TPipelineSyncPayload); the
// rest is ignored.
const when = z.string().max(100).nullish();
const traceIn = z.object({
  transaction_id: z.string().max(200),
  pipeline_name: z.string().max(1000),
  started_at: when,
  finished_at: when,
  execution_context: z.object({ library: z.object({ version: z.string().max(100) }).nullish() }).nullish(),
  steps: z
    .array(
      z.object({
        step: z.string().max(100),
        started_at: when,
        finished_at: when,
        step_exception: z.string().nullish(),
        exception_traces: z
          .array(z.object({ exception_type: z.string().nullish(), message: z.string().nullish() }))
          .nullish(),
        step_info: z.object({ loads_ids: z.array(z.string()).nullish() }).nullish(),
        normalize_info: z
          .object({
            table_metrics: z
              .array(z.object({ table_name: z.string(), items_count: z.number().nonnegative() }))
              .nullish(),
          })
          .nullish(),
        load_info: z
          .object({ destination_name: z.string().nullish(), dataset_name: z.string().nullish() })
          .nullish(),
      }),
    )
    .max(1000),
});
const stateIn = z.object({
  pipeline_name: z.string().max(1000),
  destination_name: z.string().nullish(),
  dataset_name: z.string().nullish(),
  schemas: z
    .array(
      z.object({
        name: z.string(),
        version: z.number().int().nullish(),
        version_hash: z.string().nullish(),
        tables: z.record(z.string(), z.unknown()).nullish(),
      }),
    )
    .max(1000),
});

function isoOf(v: string | null | undefined): string | null {
  if (!v) return null;
  const t = new Date(v);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

function between(from: string | null, to: string | null): number | null {
  if (!from || !to) return null;
  return Math.max(0, Math.round(new Date(to).getTime() - new Date(from).getTime()));
}

/** The bounded, masked summary of a dlt trace. */
export function summarizeTrace(raw: z.infer<typeof traceIn>, mask: (s: string) => string): RunTraceSummary {
  let truncated = false;
  const cut = (s: string, max: number) => {
    const m = mask(s);
    if (m.length <= max) return m;
    truncated = true;
    return m.slice(0, max);
  };
  const opt = (s: string | null | undefined, max: number) => (s ? cut(s, max) : null);
  const startedAt = isoOf(raw.started_at);
  const finishedAt = isoOf(raw.finished_at);
  const steps: RunTraceSummary['steps'] = [];
  const loadIds: string[] = [];
  const rowCounts: Record<string, number> = {};
  const exceptions: RunTraceSummary['exceptions'] = [];
  let destination: string | null = null;
  let datasetName: string | null = null;
  for (const s of raw.steps) {
    const step = cut(s.step, 50);
    const failed = Boolean(s.step_exception);
    if (steps.length < 20) {
      const from = isoOf(s.started_at);
      const to = isoOf(s.finished_at);
      steps.push({ step, startedAt: from, finishedAt: to, durationMs: between(from, to), failed });
    } else truncated = true;
    for (const id of s.step_info?.loads_ids ?? [])
      if (!loadIds.includes(id)) {
        if (loadIds.length < 50) loadIds.push(cut(id, 100));
        else truncated = true;
      }
    // Rows per table as normalize counted them (dlt's own tables left out).
    for (const m of s.normalize_info?.table_metrics ?? []) {
      if (m.table_name.startsWith('_dlt_')) continue;
      const name = cut(m.table_name, 200);
      if (name in rowCounts || Object.keys(rowCounts).length < 200)
        rowCounts[name] = (rowCounts[name] ?? 0) + Math.round(m.items_count);
      else truncated = true;
    }
    if (s.load_info) {
      destination = opt(s.load_info.destination_name, 200) ?? destination;
      datasetName = opt(s.load_info.dataset_name, 200) ?? datasetName;
    }
    // A failed `run` step repeats the failed step's exception: each message once.
    const message = failed ? cut(s.step_exception ?? '', 2000) : '';
    if (failed && !exceptions.some((e) => e.message === message)) {
      const chain = s.exception_traces ?? [];
      const last = chain[chain.length - 1];
      if (exceptions.length < 10)
        exceptions.push({
          step,
          type: opt(last?.exception_type, 200),
          message,
        });
      else truncated = true;
    }
  }
  return {
    transactionId: cut(raw.transaction_id, 200),
    pipelineName: cut(raw.pipeline_name, 200),
    startedAt,
    finishedAt,
    durationMs: between(startedAt, finishedAt),
    dltVersion: opt(raw.execution_context?.library?.version, 50),
    destination,
    datasetName,
    failed: steps.some((s) => s.failed),
    steps,
    loadIds,
    rowCounts,
    exceptions,
    truncated,
  };
}

/** The bounded, masked summary of a pipeline state (no credentials). */
export function summarizeState(raw: z.infer<typeof stateIn>, mask: (s: string) => string): RunStateSummary {
  let truncated = raw.schemas.length > 20;
  const cut = (s: string, max: number) => {
    const m = mask(s);
    if (m.length <= max) return m;
    truncated = true;
    return m.slice(0, max);
  };
  return {
    pipelineName: cut(raw.pipeline_name, 200),
    destination: raw.destination_name ? cut(raw.destination_name, 200) : null,
    datasetName: raw.dataset_name ? cut(raw.dataset_name, 200) : null,
    schemas: raw.schemas.slice(0, 20).map((s) => {
      const tables = Object.keys(s.tables ?? {});
      if (tables.length > 200) truncated = true;
      return {
        name: cut(s.name, 200),
        version: s.version ?? null,
        versionHash: s.version_hash ? cut(s.version_hash, 100) : null,
        tables: tables.slice(0, 200).map((t) => cut(t, 200)),
      };
    }),
    truncated,
  };
}

function reply(res: ServerResponse, status: number, detail: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ detail }));
}

function sameToken(given: string, expected: string): boolean {
  const g = Buffer.from(given);
  const e = Buffer.from(expected);
  return g.length === e.length && timingSafeEqual(g, e);
}

/**
 * Reads a body of at most `max` bytes; undefined when it is larger. The rest of a larger body is
 * read and dropped (up to 16 × `max`, so the sender gets to read the 413), past that not read.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > 16 * max) return resolve(undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 16 * max) {
        req.pause();
        resolve(undefined);
      } else if (size <= max) chunks.push(c);
    });
    req.on('end', () => resolve(size > max ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** One worker's beacon endpoint: runs are opened at their spawn and closed once their processes are gone. */
export class RunBeacon {
  private server: Server | undefined;
  private port = 0;
  private readonly runs = new Map<string, OpenRun>();

  constructor(
    private readonly token: (runId: string) => string,
    private readonly host = '127.0.0.1',
    private readonly maxBodyBytes = MAX_BEACON_BODY_BYTES,
  ) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      void this.handle(req, res).catch(() => reply(res, 500, 'the report could not be stored'));
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.host, () => resolve());
    });
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('the beacon endpoint has no TCP address');
    this.port = address.port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The token of the run's DSN (to mask it in the run's log). */
  tokenOf(runId: string): string {
    return this.token(runId);
  }

  /** Takes the run's reports from now on; its DSN (RUNTIME__DLTHUB_DSN), undefined without an endpoint. */
  open(runId: string, run: BeaconRun): string | undefined {
    if (!this.server) return undefined;
    this.runs.set(runId, { run, inFlight: new Set(), warnings: 0 });
    return `http://${this.host}:${this.port}/beacon/v1/runs/${runId}/${this.token(runId)}`;
  }

  /** Takes no more of the run's reports; resolves once those being stored are. */
  async close(runId: string): Promise<void> {
    const open = this.runs.get(runId);
    if (!open) return;
    this.runs.delete(runId);
    await Promise.allSettled([...open.inFlight]);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const m = PATH.exec((req.url ?? '').split('?')[0] ?? '');
    if (!m) return reply(res, 404, 'not found');
    const [, runId = '', token = '', kind = ''] = m;
    // The token first: nothing tells a caller without it whether the run exists.
    if (!sameToken(token, this.token(runId))) {
      this.warn(runId, `beacon: a request with a wrong token was refused (403)`);
      return reply(res, 403, 'forbidden');
    }
    const open = this.runs.get(runId);
    if (!open) return reply(res, 404, 'the run is not in progress');
    if (req.method !== 'PUT') return reply(res, 405, 'only PUT');
    if (kind !== 'trace' && kind !== 'state') {
      this.warn(runId, `beacon: PUT /${kind} is not taken (404)`);
      return reply(res, 404, `/${kind} is not taken`);
    }
    const work = this.report(open, kind, req, res);
    open.inFlight.add(work);
    try {
      await work;
    } finally {
      open.inFlight.delete(work);
    }
  }

  private async report(
    open: OpenRun,
    kind: 'trace' | 'state',
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const refuse = (status: number, why: string) => {
      if (open.warnings++ < MAX_WARNINGS) open.run.warn(`beacon: PUT /${kind} refused (${status}): ${why}`);
      reply(res, status, why);
    };
    const body = await readBody(req, this.maxBodyBytes);
    if (!body) return refuse(413, `the body is over ${this.maxBodyBytes} bytes`);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      return refuse(400, 'the body is not JSON');
    }
    let stored: boolean;
    if (kind === 'trace') {
      const p = traceIn.safeParse(json);
      if (!p.success) return refuse(422, `not a dlt trace (${issueOf(p.error)})`);
      stored = await open.run.report({ kind, trace: summarizeTrace(p.data, open.run.mask) });
    } else {
      const p = stateIn.safeParse(json);
      if (!p.success) return refuse(422, `not a dlt pipeline state (${issueOf(p.error)})`);
      stored = await open.run.report({ kind, state: summarizeState(p.data, open.run.mask) });
    }
    if (!stored) return refuse(409, 'the run takes no more reports');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  }

  private warn(runId: string, line: string): void {
    const open = this.runs.get(runId);
    if (open && open.warnings++ < MAX_WARNINGS) open.run.warn(line);
  }
}

function issueOf(err: z.ZodError): string {
  const i = err.issues[0];
  return i ? `${i.path.join('.') || 'body'}: ${i.message}` : 'invalid';
}
