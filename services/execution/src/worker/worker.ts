import { Logger } from '@nestjs/common';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import type { Subscription } from '@nats-io/transport-node';
import type { Kysely } from 'kysely';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import type { JobEvent, RunStatus } from '#libs/contracts';
import { eventTypesOf, Headers, mayHold, type EventStore } from '#libs/eventstore';
import { isTransientNatsError, type NatsConnection } from '#libs/nats';
import type { ExecutionTables } from '../migrations/index.js';
import { isTerminal, runDecider, type RunCommand, type RunState } from '../run/run.decider.js';
import { RunCommands, runRef } from '../run/run.handler.js';
import type { RunLeases } from './leases.js';
import type { WorkspaceSlots } from './workspace-slots.js';
import { dotDltOf, insideDir, type MaterializedConfig, type RunMaterializer } from './materializer.js';
import { OutputCapture, type RunOutputSink } from './output.js';
import { collectPipelines } from './pipeline-report.js';
import { groupAlive, resolveExecutable, signalGroup, waitGroupGone } from './process-group.js';
import type { ProcessExit, ProcessHandle, RunExecutor, RunProcess } from '../executor/index.js';

export type RunRequestedData = Extract<JobEvent, { type: 'RunRequested' }>['data'];

/** A run request as a worker receives it. */
export interface RunRequest {
  workspaceId: string;
  jobId: string;
  /** When RunRequested was stored. */
  requestedAt: Date;
  data: RunRequestedData;
}

export interface WorkerOptions {
  /** Unique per worker process (default: a random UUID). */
  workerId?: string;
  /** Runs this worker executes at once. */
  slots: number;
  /** RUNWAY_DATA_DIR: run directories under work/, per-job dlt data under workspaces/. */
  dataDir: string;
  /** RUNWAY_PYTHON (resolved to an absolute path once, at start). */
  python: string;
  /** Default timeout of a run whose job sets none. */
  runTimeoutSeconds: number;
  /** Between SIGTERM and SIGKILL. */
  killGraceMs: number;
  /** Most bytes of output a run may log (default unlimited). */
  logMaxBytes?: number;
  /**
   * `starting` stays visible until this long after the run was requested (the dlt CLI polls every
   * 2 s and waits to see it); the process itself is spawned at once. Default 2500 ms.
   */
  startingHoldMs?: number;
  /** Lease refresh period (default 3 s; the bucket TTL is the lease lifetime). */
  leaseRefreshMs?: number;
  /** Durable consumer shared by all workers (default run_workers). */
  consumerName?: string;
  /** uv for workspaces with a pyproject.toml: its path, false to never use it; default: uv on PATH. */
  uv?: string | false;
}

export interface WorkerDeps {
  nats: NatsConnection;
  store: EventStore;
  db: Kysely<unknown>;
  leases: RunLeases;
  materializer: RunMaterializer;
  /** Where run output lines go (the LOGS stream: JetStreamLogSink). */
  output: RunOutputSink;
  /** Where run processes execute (the bubblewrap sandbox, or plain processes with RUNWAY_SANDBOX=off). */
  executor: RunExecutor;
  /** At most `limit` runs in progress per workspace, across workers (absent: no limit). */
  workspaceQuota?: { slots: WorkspaceSlots; limit: number };
}

const RUN_REQUESTED = new Set(['RunRequested']);
const SCHEDULED_RUN_SKIPPED = new Set(['ScheduledRunSkipped']);
const TERMINAL_EVENTS = new Set(['RunCompleted', 'RunFailed', 'RunCancelled', 'RunSkipped']);
const PASS_ENV = [
  'PATH',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'USER',
  'LOGNAME',
  'PYENV_ROOT',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'REQUESTS_CA_BUNDLE',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/**
 * What a sandboxed process must be able to read to run the interpreter: its prefix (a virtualenv),
 * the base installation it was made from, and the directory of the real executable.
 */
export function pythonPaths(python: string): string[] {
  const probe = spawnSync(
    python,
    [
      '-c',
      'import os, sys; print(sys.prefix); print(sys.base_prefix); print(os.path.realpath(sys.executable))',
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  if (probe.status !== 0) return [python];
  const [prefix, base, exe] = probe.stdout.trim().split('\n');
  const out = new Set<string>();
  for (const p of [prefix, base, exe ? dirname(dirname(exe)) : undefined, python])
    if (p && isAbsolute(p)) out.add(p);
  return [...out];
}

/** The interpreter as an absolute path, through shims (pyenv) to the real executable when it can tell. */
export function resolvePython(cmd: string): string {
  const exe = resolveExecutable(cmd);
  if (!exe) return cmd;
  const probe = spawnSync(exe, ['-c', 'import sys; print(sys.executable)'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  const out = probe.status === 0 ? probe.stdout.trim() : '';
  return out && isAbsolute(out) && existsSync(out) ? out : exe;
}

/**
 * A worker: pulls RunRequested from ONE durable consumer shared by every worker, only as many as
 * it has free slots (pull = back-pressure; more workers = competing consumers). A run is claimed
 * by appending RunStarting to the run aggregate at expected sequence 0: whoever else got the same
 * request (a redelivery, another worker) finds it claimed and moves on, so no run executes twice.
 */
export class Worker {
  readonly id: string;
  readonly host = hostname();
  readonly commands: RunCommands;
  readonly output: RunOutputSink;
  readonly logger: Logger;
  python = '';
  uv: string | undefined;
  /** What run processes may read besides the system: the interpreter's installation, uv. */
  toolPaths: string[] = [];
  private readonly active = new Map<string, RunExecution>();
  /** Runs holding a slot: from the claim until their processes are gone (the final events follow outside the slot). */
  private busy = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private fetching: ConsumerMessages | undefined;
  private slotWaiter: (() => void) | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly deps: WorkerDeps,
    readonly opts: WorkerOptions,
  ) {
    this.id = opts.workerId ?? randomUUID();
    this.logger = new Logger(`worker ${this.id.slice(0, 8)}`);
    this.commands = new RunCommands(deps.store, deps.db as Kysely<ExecutionTables>);
    this.output = deps.output;
  }

  get consumerName(): string {
    return this.opts.consumerName ?? 'run_workers';
  }

  /** Runs in progress in this worker. */
  get running(): readonly string[] {
    return [...this.active.keys()];
  }

  get workDir(): string {
    return join(this.opts.dataDir, 'work');
  }

  async start(): Promise<void> {
    this.python = resolvePython(this.opts.python);
    this.uv =
      this.opts.uv === false
        ? undefined
        : this.opts.uv
          ? resolveExecutable(this.opts.uv)
          : resolveExecutable('uv');
    this.toolPaths = [...pythonPaths(this.python), ...(this.uv ? [this.uv] : [])];
    mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    await this.cleanupOrphans();
    await this.ensureConsumer();
    this.refreshTimer = setInterval(() => void this.refreshLeases(), this.opts.leaseRefreshMs ?? 3_000);
    this.loop = this.pull();
    this.logger.log(
      `started with ${this.opts.slots} slots, python ${this.python}${this.uv ? `, uv ${this.uv}` : ''}; runs: ${this.deps.executor.description}`,
    );
  }

  /** Stops pulling; runs in progress are ended (SIGTERM, then SIGKILL) and recorded as failed. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.fetching?.stop();
    this.slotWaiter?.();
    await this.loop?.catch(() => undefined);
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    await Promise.all([...this.active.values()].map((e) => e.shutdown()));
  }

  private async ensureConsumer(): Promise<void> {
    const jsm = await this.deps.store.jsm();
    const stream = this.deps.store.stream;
    const filter = this.deps.store.filterSubject({ aggregateType: 'job' });
    try {
      const ci = await jsm.consumers.info(stream, this.consumerName);
      if (ci.config.filter_subject === filter && ci.config.ack_policy === AckPolicy.Explicit) return;
      await jsm.consumers.delete(stream, this.consumerName);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10014)) throw err;
    }
    try {
      await jsm.consumers.add(stream, {
        durable_name: this.consumerName,
        ack_policy: AckPolicy.Explicit,
        // From the start of the stream: a request nobody ran yet is still pending; claimed ones are skipped.
        deliver_policy: DeliverPolicy.All,
        filter_subject: filter,
        ack_wait: 60_000_000_000,
        max_ack_pending: 10_000,
        max_deliver: -1,
        inactive_threshold: 0,
      });
    } catch (err) {
      // Another worker created it at the same moment.
      await jsm.consumers.info(stream, this.consumerName).catch(() => {
        throw err;
      });
    }
  }

  private waitForSlot(): Promise<void> {
    return new Promise((resolve) => (this.slotWaiter = resolve));
  }

  private freeSlot(): void {
    const w = this.slotWaiter;
    this.slotWaiter = undefined;
    w?.();
  }

  private async pull(): Promise<void> {
    while (!this.stopping) {
      const free = this.opts.slots - this.busy;
      if (free <= 0) {
        await this.waitForSlot();
        continue;
      }
      try {
        const consumer = await this.deps.store.js.consumers.get(this.deps.store.stream, this.consumerName);
        const batch = await consumer.fetch({ max_messages: free, expires: 5_000 });
        this.fetching = batch;
        for await (const m of batch) await this.onMessage(m);
      } catch (err) {
        if (this.stopping) break;
        this.logger.warn(`pulling run requests: ${err instanceof Error ? err.message : String(err)}`);
        await sleep(1_000);
        await this.ensureConsumer().catch(() => undefined);
      } finally {
        this.fetching = undefined;
      }
    }
  }

  private async onMessage(m: JsMsg): Promise<void> {
    if (mayHold(m, SCHEDULED_RUN_SKIPPED)) {
      await this.onSkipped(m);
      return;
    }
    if (!mayHold(m, RUN_REQUESTED)) {
      m.ack();
      return;
    }
    let requests: RunRequest[];
    try {
      const commit = this.deps.store.decode(m, { types: RUN_REQUESTED });
      requests = commit.events.map((e) => ({
        workspaceId: commit.aggregate.workspaceId,
        jobId: commit.aggregate.id,
        requestedAt: new Date(commit.meta.time),
        data: e.data as RunRequestedData,
      }));
    } catch (err) {
      this.logger.error(`undecodable run request at ${m.seq}: ${String(err)}`);
      m.term();
      return;
    }
    for (const req of requests) {
      if (this.active.has(req.data.runId) || this.stopping) continue;
      if (!(await this.takeWorkspaceSlot(req))) {
        // The workspace has as many runs in progress as it may: the request waits (pending).
        m.nak(2_000);
        return;
      }
      const exec = new RunExecution(this, req);
      this.active.set(req.data.runId, exec);
      this.busy++;
      let released = false;
      // Once the run's processes are gone: the worker's slot and the workspace's.
      const release = () => {
        if (released) return;
        released = true;
        this.busy--;
        this.freeSlot();
        void this.releaseWorkspaceSlot(req);
      };
      let claimed: boolean;
      try {
        claimed = await exec.claim();
      } catch (err) {
        this.active.delete(req.data.runId);
        release();
        exec.dispose();
        this.logger.warn(`claiming run ${req.data.runId}: ${String(err)}`);
        m.nak(2_000);
        return;
      }
      if (!claimed) {
        this.active.delete(req.data.runId);
        release();
        exec.dispose();
        continue;
      }
      void exec
        .run(release)
        .catch((err: unknown) =>
          this.logger.error(
            `run ${req.data.runId}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
          ),
        )
        .finally(() => {
          this.active.delete(req.data.runId);
          release();
        });
    }
    m.ack();
  }

  private async takeWorkspaceSlot(req: RunRequest): Promise<boolean> {
    const q = this.deps.workspaceQuota;
    if (!q) return true;
    try {
      return await q.slots.acquire(req.workspaceId, req.data.runId, q.limit, async (runId) =>
        Boolean(await this.deps.leases.get(runId).catch(() => ({}))),
      );
    } catch (err) {
      this.logger.warn(`run slots of workspace ${req.workspaceId}: ${String(err)}`);
      return false;
    }
  }

  private async releaseWorkspaceSlot(req: RunRequest): Promise<void> {
    await this.deps.workspaceQuota?.slots
      .release(req.workspaceId, req.data.runId)
      .catch((err: unknown) => this.logger.warn(`run slots of workspace ${req.workspaceId}: ${String(err)}`));
  }

  /**
   * A scheduled fire the job recorded as skipped (docs/scheduling.md): the run aggregate gets its
   * RunSkipped too, so the run ends like any other (the logs service seals its empty log at once).
   */
  private async onSkipped(m: JsMsg): Promise<void> {
    let commit;
    try {
      commit = this.deps.store.decode(m, { types: SCHEDULED_RUN_SKIPPED });
    } catch (err) {
      // Garbage never becomes valid: retrying it would hold the message forever.
      this.logger.error(`undecodable message at ${m.seq}, passed over: ${String(err)}`);
      m.term();
      return;
    }
    try {
      for (const e of commit.events) {
        const d = e.data as { runId: string; reason: string };
        await this.commands.handle(
          commit.aggregate.workspaceId,
          d.runId,
          { type: 'SkipRun', reason: d.reason },
          { commandId: `${d.runId}:skip`, actor: `worker:${this.id}` },
        );
      }
      m.ack();
    } catch (err) {
      this.logger.warn(`recording a skipped run at ${m.seq}: ${String(err)}`);
      m.nak(2_000);
    }
  }

  private async refreshLeases(): Promise<void> {
    await Promise.all(
      [...this.active.values()].map((e) =>
        e.heartbeat().catch((err: unknown) => this.logger.warn(`lease of ${e.runId}: ${String(err)}`)),
      ),
    );
  }

  /** Run directories left by a worker that died: their processes are killed and their files (secrets) removed. */
  private async cleanupOrphans(): Promise<void> {
    let names: string[];
    try {
      names = readdirSync(this.workDir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const runId = name.slice(0, -'.json'.length);
      let meta: { pid?: number | null; workerId?: string; handle?: ProcessHandle } = {};
      try {
        meta = JSON.parse(readFileSync(join(this.workDir, name), 'utf8')) as typeof meta;
      } catch {
        /* unreadable: treat as orphan */
      }
      const lease = await this.deps.leases.get(runId).catch(() => undefined);
      if (lease && lease.workerId !== this.id) continue; // another live worker on this host
      if (meta.handle && meta.handle.executor === this.deps.executor.name) {
        this.logger.warn(`ending what is left of orphaned run ${runId} (pid ${meta.handle.pid})`);
        await this.deps.executor.killOrphan(meta.handle);
      } else if (meta.pid && groupAlive(meta.pid)) {
        this.logger.warn(`killing the processes of orphaned run ${runId} (group ${meta.pid})`);
        signalGroup(meta.pid, 'SIGKILL');
        await waitGroupGone(meta.pid, 5_000);
      }
      rmSync(join(this.workDir, runId), { recursive: true, force: true });
      rmSync(join(this.workDir, name), { force: true });
    }
  }
}

type EndReason = 'cancel' | 'timeout' | 'lost' | 'shutdown';

type Exit = ProcessExit;

/** One run in one worker: claim, set up, spawn, supervise, report, clean up. */
class RunExecution {
  readonly runId: string;
  private readonly ws: string;
  private readonly actor: string;
  private lastSeq = 0;
  private status: RunStatus = 'pending';
  private sub: Subscription | undefined;
  private proc: RunProcess | undefined;
  private spawnedAt: number | undefined;
  private endReason: EndReason | undefined;
  private terminating: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private capture: OutputCapture | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private done: Promise<void> | undefined;
  private closed: Promise<void> = Promise.resolve();
  private prepared: { env: Record<string, string>; argv: string[]; writable: string[] } | undefined;
  private readonly runDir: string;
  private readonly metaFile: string;

  constructor(
    private readonly w: Worker,
    private readonly req: RunRequest,
  ) {
    this.runId = req.data.runId;
    this.ws = req.workspaceId;
    this.actor = `worker:${w.id}`;
    this.runDir = join(w.workDir, this.runId);
    this.metaFile = join(w.workDir, `${this.runId}.json`);
  }

  /**
   * Appends to the run, retrying (for up to a minute) while NATS cannot answer: a cluster node
   * restarting, a leader election. The command id makes a retry of a stored command a no-op. Without
   * the retry a run whose process had finished was left unended, its lease released, and the reaper
   * failed it as worker_lost (seen in test/durability/cluster-faults under a cluster restart).
   */
  private async cmd(command: RunCommand, commandId: string): Promise<RunState> {
    const until = Date.now() + 60_000;
    let r: Awaited<ReturnType<RunCommands['handle']>>;
    for (let attempt = 0; ; attempt++) {
      try {
        r = await this.w.commands.handle(this.ws, this.runId, command, {
          commandId: `${this.runId}:${commandId}`,
          actor: this.actor,
        });
        break;
      } catch (err) {
        if (!isTransientNatsError(err) || Date.now() > until) throw err;
        this.w.logger.warn(`run ${this.runId}: ${command.type} not stored yet (${String(err)}), retrying`);
        await sleep(Math.min(250 * 2 ** attempt, 2_000));
      }
    }
    this.lastSeq = Math.max(this.lastSeq, r.seq);
    this.observe(r.state.status);
    return r.state;
  }

  /** Reacts to a status someone else set: a cancel request, or the run ended elsewhere (the reaper). */
  private observe(status: RunStatus): void {
    this.status = status;
    if (status === 'cancelling') this.end('cancel');
    else if (isTerminal(status) && this.spawnedAt !== undefined && !this.endReason) this.end('lost');
  }

  /** Subscribes to the run's subject (cancel requests arrive there), then claims the run. */
  async claim(): Promise<boolean> {
    const subject = this.w.deps.store.subjectOf(runRef(this.ws, this.runId));
    this.sub = this.w.deps.nats.subscribe(subject, {
      callback: (_err, msg) => {
        if (msg.headers?.get(Headers.Actor) === this.actor) return;
        const types = eventTypesOf(msg) ?? [];
        if (types.includes('RunCancelRequested')) this.end('cancel');
        else if (types.some((t) => TERMINAL_EVENTS.has(t)) && this.spawnedAt !== undefined) this.end('lost');
      },
    });
    const d = this.req.data;
    const r = await this.w.commands.handle(
      this.ws,
      this.runId,
      {
        type: 'ClaimRun',
        runId: this.runId,
        jobId: this.req.jobId,
        number: d.number,
        workerId: this.w.id,
        host: this.w.host,
      },
      { commandId: `${this.runId}:claim:${this.w.id}`, actor: this.actor },
    );
    this.lastSeq = r.seq;
    this.status = r.state.status;
    return r.events.length > 0 && !r.duplicate && r.state.workerId === this.w.id;
  }

  dispose(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  private leaseInfo() {
    return {
      workerId: this.w.id,
      host: this.w.host,
      workerPid: process.pid,
      runPid: this.proc?.pid ?? null,
      at: new Date().toISOString(),
    };
  }

  /** Refreshes the lease; notices a cancel or an end the subscription may have missed. */
  async heartbeat(): Promise<void> {
    await this.w.deps.leases.put(this.runId, this.leaseInfo());
    const seq = await this.w.deps.store.lastSequenceOf(runRef(this.ws, this.runId));
    if (seq > this.lastSeq) {
      const { commits, lastSeq } = await this.w.deps.store.read(runRef(this.ws, this.runId));
      const state = commits
        .flatMap((c) => c.events)
        .reduce((s, e) => runDecider.evolve(s, e as never), runDecider.initialState());
      this.lastSeq = lastSeq;
      this.observe(state.status);
    }
  }

  private end(reason: EndReason): void {
    if (this.endReason) return;
    this.endReason = reason;
    this.wake?.();
    if (this.proc !== undefined) void this.terminate();
  }

  /** SIGTERM to every process of the run, SIGKILL after the grace period. */
  private terminate(graceMs = this.w.opts.killGraceMs): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) return Promise.resolve();
    this.terminating ??= (async () => {
      this.capture?.note(`stopping the run (${this.endReason}): SIGTERM to its processes`);
      proc.signal('SIGTERM');
      if (!(await proc.waitGone(graceMs))) {
        this.capture?.note(
          `the run's processes are still alive after ${Math.round(graceMs / 1000)} s: SIGKILL`,
        );
        proc.signal('SIGKILL');
      }
    })();
    return this.terminating;
  }

  /** The worker stops: end the process and record the run as lost with this worker. */
  async shutdown(): Promise<void> {
    this.end('shutdown');
    if (this.proc !== undefined) await this.terminate(Math.min(this.w.opts.killGraceMs, 3_000));
    await this.done?.catch(() => undefined);
  }

  /** `processesGone` is called once the run's processes are gone: its slot is free for the next run. */
  run(processesGone: () => void = () => undefined): Promise<void> {
    this.processesGone = processesGone;
    this.done = this.execute();
    return this.done;
  }

  private processesGone: () => void = () => undefined;

  private async execute(): Promise<void> {
    const d = this.req.data;
    const startedSetup = Date.now();
    try {
      await this.w.deps.leases
        .put(this.runId, this.leaseInfo())
        .catch((err: unknown) => this.w.logger.warn(`lease of ${this.runId}: ${String(err)}`));
      writeFileSync(
        this.metaFile,
        JSON.stringify({ runId: this.runId, workspaceId: this.ws, workerId: this.w.id, pid: null }),
        { mode: 0o600 },
      );
      let prepared: {
        entry: string;
        config: MaterializedConfig;
        env: Record<string, string>;
        argv: string[];
        writable: string[];
      };
      try {
        prepared = await this.prepare();
        this.prepared = prepared;
      } catch (err) {
        if (this.endReason === 'cancel')
          return void (await this.confirmCancelled(null, 'cancelled before the process started'));
        await this.fail('setup_error', err instanceof Error ? err.message : String(err), null, []);
        return;
      }
      if (this.endReason === 'cancel')
        return void (await this.confirmCancelled(null, 'cancelled before the process started'));
      if (this.endReason === 'shutdown')
        return void (await this.fail(
          'worker_lost',
          'the worker shut down before the process started',
          null,
          [],
        ));

      const ref = { workspaceId: this.ws, runId: this.runId };
      this.capture = new OutputCapture(
        ref,
        this.w.output,
        prepared.config.secretValues,
        this.w.opts.logMaxBytes ?? Number.POSITIVE_INFINITY,
      );
      await this.w.output.begin(ref);
      for (const warning of prepared.config.warnings) this.capture.note(warning);
      let exited: Promise<Exit>;
      try {
        exited = this.spawn(prepared.argv, prepared.env, prepared.writable);
      } catch (err) {
        await this.w.output.end(ref);
        await this.fail('spawn_error', err instanceof Error ? err.message : String(err), null, []);
        return;
      }
      this.w.logger.debug(
        `run ${this.runId}: spawned pid ${this.proc?.pid} ${this.spawnedAt! - this.req.requestedAt.getTime()} ms after the request (setup ${this.spawnedAt! - startedSetup} ms)`,
      );
      const timeoutSeconds = d.timeoutSeconds ?? this.w.opts.runTimeoutSeconds;
      this.timeoutTimer = setTimeout(() => this.end('timeout'), timeoutSeconds * 1000);
      if (this.endReason) void this.terminate();

      const capture = this.capture;
      const proc = this.proc!;
      // The process's end, concurrently with the `starting` hold below: once its process group is
      // gone, its files (secrets) are removed and its slot is free for the next run.
      const ended = (async () => {
        const exit = await exited;
        clearTimeout(this.timeoutTimer);
        // Whatever the main process left behind in its group goes too.
        if (this.terminating) await this.terminating;
        else if (proc.alive()) {
          const left = proc.liveCount();
          if (left > 0) capture.note(`the process exited, ending ${left} process(es) it left behind`);
          proc.signal('SIGKILL');
        }
        if (!(await proc.waitGone(30_000)))
          this.w.logger.warn(`run ${this.runId}: processes of pid ${proc.pid} survive SIGKILL`);
        rmSync(this.runDir, { recursive: true, force: true });
        this.processesGone();
        // The last output may still be in the pipes.
        await Promise.race([this.closed, sleep(2_000)]);
        capture.finish();
        if (capture.droppedLines > 0)
          capture.note(`${capture.droppedLines} line(s) past the log limit were dropped`);
        await this.w.output.end(ref);
        return exit;
      })();

      // Keep `starting` visible for a client polling every 2 s; the process runs meanwhile.
      const holdUntil = this.req.requestedAt.getTime() + (this.w.opts.startingHoldMs ?? 2_500);
      if (!this.endReason && Date.now() < holdUntil) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, holdUntil - Date.now());
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
      if (!this.endReason) {
        await this.cmd(
          {
            type: 'MarkRunning',
            pid: proc.pid,
            command: prepared.argv.join(' '),
            startedAt: new Date(this.spawnedAt!).toISOString(),
          },
          'running',
        );
      }
      await this.finish(await ended);
    } finally {
      clearTimeout(this.timeoutTimer);
      this.dispose();
      rmSync(this.runDir, { recursive: true, force: true });
      rmSync(this.metaFile, { force: true });
      await this.w.deps.leases.release(this.runId).catch(() => undefined);
    }
  }

  /** A fresh directory with the deployment's files and the profile's configuration, and the process environment. */
  private async prepare() {
    const d = this.req.data;
    const w = this.w;
    rmSync(this.runDir, { recursive: true, force: true });
    mkdirSync(this.runDir, { recursive: true, mode: 0o700 });
    if (!d.deployment) throw new Error('the run has no deployment');
    await w.deps.materializer.writeDeployment(this.runDir, this.ws, d.deployment);
    const entry = insideDir(this.runDir, d.entryPoint);
    if (!existsSync(entry) || !statSync(entry).isFile()) {
      throw new Error(`entry point ${d.entryPoint} is not a file of deployment ${d.deployment.version}`);
    }
    const dotDlt = dotDltOf(this.runDir);
    mkdirSync(dotDlt, { recursive: true, mode: 0o700 });
    const config: MaterializedConfig = d.configuration
      ? await w.deps.materializer.writeConfiguration(dotDlt, this.ws, d.configuration, d.profile)
      : {
          profile: d.profile,
          secretValues: [],
          warnings: ['no configuration uploaded: the run has no .dlt/*.toml files'],
        };
    // dlt's workspace mode (profiles) needs this marker. dlt 1.20 picks the profile from the pin
    // file `.dlt/profile-name` (it does not read WORKSPACE__PROFILE, which later versions and the
    // environment of the run still get).
    if (!existsSync(join(dotDlt, '.workspace'))) writeFileSync(join(dotDlt, '.workspace'), '');
    writeFileSync(join(dotDlt, 'profile-name'), `${config.profile}\n`);
    const wsDir = join(w.opts.dataDir, 'workspaces', this.ws);
    const jobDir = join(wsDir, 'jobs', this.req.jobId);
    const dataDir = join(jobDir, 'data', config.profile);
    const localDir = join(wsDir, 'local', config.profile);
    const home = join(wsDir, 'home');
    for (const dir of [dataDir, localDir, home]) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const writable = [this.runDir, dataDir, localDir, home];
    const env: Record<string, string> = {};
    for (const k of PASS_ENV) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    Object.assign(env, {
      HOME: home,
      PYTHONUNBUFFERED: '1',
      WORKSPACE__PROFILE: config.profile,
      RUNTIME__RUN_ID: this.runId,
      DLT_DATA_DIR: dataDir,
      DLT_LOCAL_DIR: localDir,
      DLT_PROJECT_DIR: this.runDir,
      RUNWAY_RUN_ID: this.runId,
      RUNWAY_RUN_NUMBER: String(d.number),
      RUNWAY_JOB_ID: this.req.jobId,
      RUNWAY_WORKSPACE_ID: this.ws,
      RUNWAY_TRIGGER: d.trigger,
    });
    let argv: string[];
    if (w.uv && existsSync(join(this.runDir, 'pyproject.toml'))) {
      env.UV_PROJECT_ENVIRONMENT = join(jobDir, 'venv');
      // Per workspace under the sandbox: a shared writable cache would let one workspace plant
      // packages for another.
      env.UV_CACHE_DIR =
        w.deps.executor.name === 'local-process'
          ? (process.env.UV_CACHE_DIR ?? join(w.opts.dataDir, 'cache', 'uv'))
          : join(wsDir, 'cache', 'uv');
      for (const dir of [env.UV_PROJECT_ENVIRONMENT, env.UV_CACHE_DIR]) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        writable.push(dir);
      }
      argv = [w.uv, 'run', 'python', d.entryPoint];
    } else {
      argv = [w.python, d.entryPoint];
    }
    // The run's processes own what they may write (under the sandbox: the workspace's uid).
    w.deps.executor.grant(this.ws, writable);
    return { entry, config, env, argv, writable };
  }

  private spawn(argv: string[], env: Record<string, string>, writable: string[]): Promise<Exit> {
    const proc = this.w.deps.executor.spawn({
      argv,
      env,
      cwd: this.runDir,
      workspaceId: this.ws,
      writable,
      readable: this.w.toolPaths,
    });
    this.proc = proc;
    this.spawnedAt = Date.now();
    writeFileSync(
      this.metaFile,
      JSON.stringify({
        runId: this.runId,
        workspaceId: this.ws,
        workerId: this.w.id,
        pid: proc.pid,
        handle: proc.handle,
      }),
      { mode: 0o600 },
    );
    proc.stdout.on('data', (c: Buffer) => this.capture?.write('stdout', c));
    proc.stderr.on('data', (c: Buffer) => this.capture?.write('stderr', c));
    this.closed = proc.closed;
    return proc.exited;
  }

  private async fail(
    reason: 'setup_error' | 'spawn_error' | 'exit_code' | 'signal' | 'timeout' | 'worker_lost',
    message: string,
    exit: Exit | null,
    stderrTail: string[],
  ) {
    const state = await this.cmd(
      {
        type: 'FailRun',
        reason,
        message,
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        durationMs: exit && this.spawnedAt !== undefined ? exit.at - this.spawnedAt : null,
        stderrTail,
        endedAt: exit ? new Date(exit.at).toISOString() : null,
      },
      `fail:${reason}`,
    );
    if (state.status === 'cancelling')
      await this.confirmCancelled(exit, 'the run ended while being cancelled');
  }

  private async confirmCancelled(exit: Exit | null, message: string): Promise<void> {
    await this.cmd(
      {
        type: 'ConfirmCancelled',
        message,
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        durationMs: exit && this.spawnedAt !== undefined ? exit.at - this.spawnedAt : null,
        endedAt: exit ? new Date(exit.at).toISOString() : null,
      },
      'cancelled',
    );
  }

  private async finish(exit: Exit): Promise<void> {
    const tail = this.capture?.stderrTail() ?? [];
    switch (this.endReason) {
      case 'cancel':
        return this.confirmCancelled(exit, `cancelled: the processes of pid ${this.proc?.pid} ended`);
      case 'timeout': {
        const t = this.req.data.timeoutSeconds ?? this.w.opts.runTimeoutSeconds;
        return this.fail('timeout', `the run exceeded its timeout of ${t} s and was stopped`, exit, tail);
      }
      case 'shutdown':
        return this.fail('worker_lost', 'the worker shut down while the run was in progress', exit, tail);
      case 'lost':
        return; // ended elsewhere (the reaper failed it): nothing to add
      default:
        break;
    }
    let state = await this.cmd(
      {
        type: 'MarkFinalizing',
        exitCode: exit.code,
        signal: exit.signal,
        endedAt: new Date(exit.at).toISOString(),
      },
      'finalizing',
    );
    if (state.status === 'cancelling')
      return this.confirmCancelled(exit, 'the process ended while the run was being cancelled');
    // What dlt left in the job's pipelines directory: schemas, loads, row counts.
    if (this.prepared) {
      const env = this.prepared.env;
      const venvPython = env.UV_PROJECT_ENVIRONMENT
        ? join(env.UV_PROJECT_ENVIRONMENT, 'bin', 'python')
        : undefined;
      // In the sandbox too: what the run left (pickled traces) is as untrusted as the run.
      const collected = await collectPipelines({
        executor: this.w.deps.executor,
        python: venvPython && existsSync(venvPython) ? venvPython : this.w.python,
        env,
        cwd: env.DLT_DATA_DIR!,
        workspaceId: this.ws,
        writable: this.prepared.writable.filter((p) => p !== this.runDir),
        readable: this.w.toolPaths,
        since: this.spawnedAt!,
      });
      if (collected.pipelines.length > 0 || collected.warnings.length > 0) {
        state = await this.cmd(
          { type: 'ReportPipelines', pipelines: collected.pipelines, warnings: collected.warnings },
          'pipelines',
        );
        if (state.status === 'cancelling')
          return this.confirmCancelled(exit, 'the process ended while the run was being cancelled');
      }
    }
    const durationMs = exit.at - this.spawnedAt!;
    if (exit.code === 0) {
      state = await this.cmd({ type: 'CompleteRun', exitCode: 0, durationMs }, 'completed');
      if (state.status === 'cancelling')
        await this.confirmCancelled(exit, 'the process ended while the run was being cancelled');
      return;
    }
    if (exit.signal) return this.fail('signal', `the process was killed by ${exit.signal}`, exit, tail);
    return this.fail('exit_code', `the process exited with code ${exit.code}`, exit, tail);
  }
}
