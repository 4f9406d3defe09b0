import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import { mayHold } from '#libs/eventstore';
import { sleep } from '../executor/index.js';
import type { RunRequest, RunRequestedData } from './run-request.js';
import { RunSupervisor } from './run-supervisor.js';
import type { Worker } from './worker.js';

const RUN_REQUESTED = new Set(['RunRequested']);
const SCHEDULED_RUN_SKIPPED = new Set(['ScheduledRunSkipped']);

/**
 * The worker's intake: pulls RunRequested from ONE durable consumer shared by every worker, only
 * as many as it has free slots (pull = back-pressure; more workers = competing consumers), and
 * within the workspace's quota of runs in progress. A run is claimed by appending RunStarting to
 * the run aggregate at expected sequence 0: whoever else got the same request (a redelivery,
 * another worker) finds it claimed and moves on, so no run executes twice.
 */
export class RunClaimer {
  /** Runs holding a slot: from the claim until their processes are gone (the final events follow outside the slot). */
  private busy = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private fetching: ConsumerMessages | undefined;
  private slotWaiter: (() => void) | undefined;

  constructor(
    private readonly w: Worker,
    /** Runs claimed by this worker, by id. */
    private readonly active: Map<string, RunSupervisor>,
  ) {}

  get consumerName(): string {
    return this.w.opts.consumerName ?? 'run_workers';
  }

  async start(): Promise<void> {
    await this.ensureConsumer();
    this.loop = this.pull();
  }

  /** Stops pulling (runs in progress go on). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.fetching?.stop();
    this.slotWaiter?.();
    await this.loop?.catch(() => undefined);
  }

  private async ensureConsumer(): Promise<void> {
    const { store } = this.w.deps;
    const jsm = await store.jsm();
    const filter = store.filterSubject({ aggregateType: 'job' });
    try {
      const ci = await jsm.consumers.info(store.stream, this.consumerName);
      if (ci.config.filter_subject === filter && ci.config.ack_policy === AckPolicy.Explicit) return;
      await jsm.consumers.delete(store.stream, this.consumerName);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10014)) throw err;
    }
    try {
      await jsm.consumers.add(store.stream, {
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
      await jsm.consumers.info(store.stream, this.consumerName).catch(() => {
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
      const free = this.w.opts.slots - this.busy;
      if (free <= 0) {
        await this.waitForSlot();
        continue;
      }
      try {
        const consumer = await this.w.deps.store.js.consumers.get(
          this.w.deps.store.stream,
          this.consumerName,
        );
        const batch = await consumer.fetch({ max_messages: free, expires: 5_000 });
        this.fetching = batch;
        for await (const m of batch) await this.onMessage(m);
      } catch (err) {
        if (this.stopping) break;
        this.w.logger.warn(`pulling run requests: ${err instanceof Error ? err.message : String(err)}`);
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
      const commit = this.w.deps.store.decode(m, { types: RUN_REQUESTED });
      requests = commit.events.map((e) => ({
        workspaceId: commit.aggregate.workspaceId,
        jobId: commit.aggregate.id,
        requestedAt: new Date(commit.meta.time),
        data: e.data as RunRequestedData,
      }));
    } catch (err) {
      this.w.logger.error(`undecodable run request at ${m.seq}: ${String(err)}`);
      m.term();
      return;
    }
    for (const req of requests) {
      if (this.active.has(req.data.runId) || this.stopping) continue;
      const outcome = await this.take(req);
      if (outcome === 'retry') {
        m.nak(2_000);
        return;
      }
    }
    m.ack();
  }

  /**
   * Claims one requested run and starts it. `retry`: the request must come back later (the
   * workspace is at its quota, or the claim could not be stored).
   */
  private async take(req: RunRequest): Promise<'started' | 'not-ours' | 'retry'> {
    if (!(await this.takeWorkspaceSlot(req))) return 'retry'; // the request waits (pending)
    const run = new RunSupervisor(this.w, req);
    this.active.set(req.data.runId, run);
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

  private async takeWorkspaceSlot(req: RunRequest): Promise<boolean> {
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

  private async releaseWorkspaceSlot(req: RunRequest): Promise<void> {
    await this.w.deps.workspaceQuota?.slots
      .release(req.workspaceId, req.data.runId)
      .catch((err: unknown) =>
        this.w.logger.warn(`run slots of workspace ${req.workspaceId}: ${String(err)}`),
      );
  }

  /**
   * A scheduled fire the job recorded as skipped (docs/scheduling.md): the run aggregate gets its
   * RunSkipped too, so the run ends like any other (the logs service seals its empty log at once).
   */
  private async onSkipped(m: JsMsg): Promise<void> {
    let commit;
    try {
      commit = this.w.deps.store.decode(m, { types: SCHEDULED_RUN_SKIPPED });
    } catch (err) {
      // Garbage never becomes valid: retrying it would hold the message forever.
      this.w.logger.error(`undecodable message at ${m.seq}, passed over: ${String(err)}`);
      m.term();
      return;
    }
    try {
      for (const e of commit.events) {
        const d = e.data as { runId: string; reason: string };
        await this.w.commands.handle(
          commit.aggregate.workspaceId,
          d.runId,
          { type: 'SkipRun', reason: d.reason },
          { commandId: `${d.runId}:skip`, actor: `worker:${this.w.id}` },
        );
      }
      m.ack();
    } catch (err) {
      this.w.logger.warn(`recording a skipped run at ${m.seq}: ${String(err)}`);
      m.nak(2_000);
    }
  }
}
