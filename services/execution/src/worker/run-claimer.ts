import { RunRequested } from '#libs/contracts';
import { reactorDurableName, startReactor, type Reactor, type ReactorEvent } from '#libs/eventstore';
import {
  extractTraceContext,
  inSpan,
  observeQueueDepth,
  TRACEPARENT,
  withLogFields,
  type LogFields,
} from '#libs/observability';
import { adoptLegacyRunConsumer } from '../run/reactors/legacy-consumer.js';
import { SKIPPED_RUNS_REACTOR } from '../run/reactors/skipped-run.reactor.js';
import type { RunRequestedEvent } from './run-requested.js';
import { RunSupervisor } from './run-supervisor.js';
import type { Worker } from './worker.js';

/** The correlation id and run id every log line about this request carries (RUNWAY_LOG_FORMAT=json). */
function logFieldsOf(e: ReactorEvent): LogFields {
  const runId = RunRequested.schema.safeParse(e.data).data?.runId;
  return { correlationId: e.meta.correlationId ?? e.meta.commandId, ...(runId ? { runId } : {}) };
}

/** Thrown to have a request delivered again later (its commit is nak'ed with a fixed delay). */
class TryLater extends Error {}

/** The durable reactor every worker shares (competing consumers). */
export const RUN_CLAIMS_REACTOR = 'run-workers';

/**
 * The worker's intake: a reactor on RunRequested shared by every worker (libs/eventstore's
 * startReactor) that pulls only while the worker has free slots (pull = back-pressure; more
 * workers = competing consumers), within the workspace's quota of runs in progress. A run is
 * claimed by appending RunStarting to the run aggregate at expected sequence 0: whoever else got
 * the same request (a redelivery, another worker) finds it claimed and moves on, so no run
 * executes twice. A request that cannot be taken now (quota, a claim not stored) comes back in 2 s.
 */
export class RunClaimer {
  /** Runs holding a slot: from the claim until their processes are gone (the final events follow outside the slot). */
  private busy = 0;
  /** Interactive apps of this worker (they do not take batch slots: RUNWAY_INTERACTIVE_PER_WORKER). */
  private apps = 0;
  private stopping = false;
  private reactor: Reactor | undefined;
  private unobserveQueue: (() => void) | undefined;

  constructor(
    private readonly w: Worker,
    /** Runs claimed by this worker, by id. */
    private readonly active: Map<string, RunSupervisor>,
  ) {}

  get consumerName(): string {
    return this.w.opts.consumerName ?? RUN_CLAIMS_REACTOR;
  }

  async start(): Promise<void> {
    if (!this.w.opts.consumerName)
      await adoptLegacyRunConsumer(this.w.deps.store, RUN_CLAIMS_REACTOR, SKIPPED_RUNS_REACTOR, (m) =>
        this.w.logger.log(m),
      );
    this.reactor = await startReactor({
      name: this.consumerName,
      store: this.w.deps.store,
      eventTypes: [RunRequested.type],
      aggregateTypes: ['job'],
      capacity: () => Math.max(this.w.opts.slots - this.busy, this.w.interactive.perWorker - this.apps),
      // The worker's claim and spawn in the trace of the request (the commit's traceparent header).
      react: (e) =>
        inSpan('worker', 'worker claim run', () => withLogFields(logFieldsOf(e), () => this.onRequested(e)), {
          ...(e.traceparent
            ? { parent: extractTraceContext({ get: (k) => (k === TRACEPARENT ? e.traceparent : undefined) }) }
            : {}),
          attributes: { 'runway.job_id': e.ref.id },
        }),
      retryDelayMs: 2_000,
      maxRetryDelayMs: 2_000,
      log: (m) => (m.includes(TryLater.name) ? this.w.logger.debug(m) : this.w.logger.warn(m)),
    });
    // runway_queue_depth{consumer}: run requests no worker took yet (the consumer's num_pending).
    const store = this.w.deps.store;
    const durable = reactorDurableName(store, this.consumerName);
    this.unobserveQueue = observeQueueDepth(this.consumerName, async () => {
      const info = await (await store.jsm()).consumers.info(store.stream, durable);
      return info.num_pending + info.num_ack_pending; // not delivered yet + waiting to be taken (quota)
    });
  }

  /** Stops pulling (runs in progress go on). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.unobserveQueue?.();
    await this.reactor?.stop();
  }

  private async onRequested(e: ReactorEvent): Promise<void> {
    const req: RunRequestedEvent = {
      workspaceId: e.ref.workspaceId,
      jobId: e.ref.id,
      requestedAt: new Date(e.time),
      data: RunRequested.schema.parse(e.data),
    };
    if (this.active.has(req.data.runId)) return;
    // Back to the consumer for another worker (not acked: a stopping worker must not lose it).
    if (this.stopping) throw new TryLater(`${TryLater.name}: the worker stops`);
    if ((await this.take(req)) === 'retry') throw new TryLater(`${TryLater.name}: run ${req.data.runId}`);
  }

  /**
   * An interactive app's limits (docs/interactive.md): this worker's apps (the request waits for a
   * worker with room up to RUNWAY_INTERACTIVE_QUEUE_SECONDS, then fails) and the workspace's apps
   * across workers (fails at once). A refused request is claimed and failed with reason `limit`.
   */
  private async appLimit(req: RunRequestedEvent): Promise<'ok' | 'retry' | { refuse: string }> {
    const o = this.w.interactive;
    if (this.apps >= o.perWorker) {
      if (Date.now() - req.requestedAt.getTime() < o.queueSeconds * 1000) return 'retry';
      return {
        refuse: `no worker could start another interactive app within ${o.queueSeconds} s: each runs its limit of ${o.perWorker} (RUNWAY_INTERACTIVE_PER_WORKER)`,
      };
    }
    const q = this.w.deps.appQuota;
    if (!q) return 'ok';
    try {
      const ok = await q.slots.acquire(req.workspaceId, req.data.runId, q.limit, async (runId) =>
        Boolean(await this.w.deps.leases.get(runId).catch(() => ({}))),
      );
      if (ok) return 'ok';
    } catch (err) {
      this.w.logger.warn(`app slots of workspace ${req.workspaceId}: ${String(err)}`);
      return 'retry';
    }
    return {
      refuse: `the workspace already runs ${q.limit} interactive apps (RUNWAY_INTERACTIVE_PER_WORKSPACE=${q.limit}): stop one (cancel its run) or wait until an idle one stops`,
    };
  }

  /** Claims a run only to end it at once as failed (`limit`), with the reason in words. */
  private async refuse(req: RunRequestedEvent, message: string): Promise<'started' | 'not-ours' | 'retry'> {
    const run = new RunSupervisor(this.w, req);
    try {
      if (!(await run.claim())) return 'not-ours';
      await run.refuse('limit', message);
      return 'started';
    } catch (err) {
      this.w.logger.warn(`refusing run ${req.data.runId}: ${String(err)}`);
      return 'retry';
    } finally {
      run.dispose();
    }
  }

  /**
   * Claims one requested run and starts it. `retry`: the request must come back later (the
   * workspace is at its quota, or the claim could not be stored).
   */
  private async take(req: RunRequestedEvent): Promise<'started' | 'not-ours' | 'retry'> {
    const app = req.data.kind === 'interactive';
    if (app) {
      const limit = await this.appLimit(req);
      if (limit === 'retry') return 'retry';
      if (limit !== 'ok') return this.refuse(req, limit.refuse);
    } else {
      if (this.busy >= this.w.opts.slots) return 'retry'; // pulled for an app's room: another worker may take it
      if (!(await this.takeWorkspaceSlot(req))) return 'retry'; // the request waits (pending)
    }
    const run = new RunSupervisor(this.w, req);
    this.active.set(req.data.runId, run);
    if (app) this.apps++;
    else this.busy++;
    let released = false;
    // Once the run's processes are gone: the worker's slot and the workspace's.
    const release = () => {
      if (released) return;
      released = true;
      if (app) this.apps--;
      else this.busy--;
      this.reactor?.wake();
      if (app) void this.releaseAppSlot(req);
      else void this.releaseWorkspaceSlot(req);
    };
    let claimed: boolean;
    try {
      claimed = await run.claim();
    } catch (err) {
      this.active.delete(req.data.runId);
      release();
      run.dispose();
      this.w.logger.warn(`claiming run ${req.data.runId}: ${String(err)}`);
      return 'retry';
    }
    if (!claimed) {
      this.active.delete(req.data.runId);
      release();
      run.dispose();
      return 'not-ours';
    }
    void run
      .run(release)
      .catch((err: unknown) =>
        this.w.logger.error(
          `run ${req.data.runId}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        ),
      )
      .finally(() => {
        this.active.delete(req.data.runId);
        release();
      });
    return 'started';
  }

  private async takeWorkspaceSlot(req: RunRequestedEvent): Promise<boolean> {
    const q = this.w.deps.workspaceQuota;
    if (!q) return true;
    try {
      return await q.slots.acquire(req.workspaceId, req.data.runId, q.limit, async (runId) =>
        Boolean(await this.w.deps.leases.get(runId).catch(() => ({}))),
      );
    } catch (err) {
      this.w.logger.warn(`run slots of workspace ${req.workspaceId}: ${String(err)}`);
      return false;
    }
  }

  private async releaseAppSlot(req: RunRequestedEvent): Promise<void> {
    await this.w.deps.appQuota?.slots
      .release(req.workspaceId, req.data.runId)
      .catch((err: unknown) =>
        this.w.logger.warn(`app slots of workspace ${req.workspaceId}: ${String(err)}`),
      );
  }

  private async releaseWorkspaceSlot(req: RunRequestedEvent): Promise<void> {
    await this.w.deps.workspaceQuota?.slots
      .release(req.workspaceId, req.data.runId)
      .catch((err: unknown) =>
        this.w.logger.warn(`run slots of workspace ${req.workspaceId}: ${String(err)}`),
      );
  }
}
