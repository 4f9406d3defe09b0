import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
} from '@nats-io/jetstream';
import type { Kysely } from 'kysely';
import { AggregateTypes } from '#libs/contracts';
import { handleCommand, type EventStore } from '#libs/eventstore';
import type { NatsConnection } from '#libs/nats';
import { PeriodicTask } from '#libs/service-host';
import {
  allSealsSubject,
  logsStreamName,
  parseLogMessage,
  parseSealSubject,
  runSealSubject,
  type LogsLocation,
  type RunLogReader,
  type SealMessage,
} from '#libs/run-logs';
import type { LogsTables } from '../migrations/index.js';
import { runLogDecider } from '../runlog/runlog.decider.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CONSUMER = 'logs_seals';

export interface SealKeeperOptions {
  /** A run ended this long ago without a seal in the stream is sealed by the logs service. */
  graceMs?: number;
  sweepEveryMs?: number;
  log?: (msg: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Makes every run's log complete and says so:
 * - the recorder reads every seal message of the LOGS stream (`logs.*.*.end`, a durable consumer:
 *   seals published while this service was down are read when it is back) and records
 *   RunLogsSealed on the run's `runlog` aggregate (once: command id `seal:<runId>`);
 * - the sweeper seals the log of a run that ended (run events, `run_logs`) without any seal after
 *   `graceMs` (its worker was lost, or it never started) with the count of the lines that are
 *   there, as `by: "logs"`. Any number of logs service replicas may run both.
 */
export class SealKeeper {
  private stopping = false;
  private messages: ConsumerMessages | undefined;
  private loops: Promise<void>[] = [];
  private readonly graceMs: number;
  private readonly sweepEveryMs: number;
  private readonly log: (msg: string) => void;
  private readonly sweeper: PeriodicTask;

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: EventStore,
    private readonly db: Kysely<LogsTables>,
    private readonly loc: LogsLocation,
    private readonly reader: RunLogReader,
    opts: SealKeeperOptions = {},
  ) {
    this.graceMs = opts.graceMs ?? 5_000;
    this.sweepEveryMs = opts.sweepEveryMs ?? 1_000;
    this.log = opts.log ?? (() => undefined);
    this.sweeper = new PeriodicTask(
      async () => void (await this.sweep()),
      () => this.sweepEveryMs,
      (err) => this.log(`seal sweep: ${String(err)}`),
    );
  }

  start(): void {
    this.loops = [this.recordLoop()];
    this.sweeper.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.sweeper.stop();
    await this.messages?.close().catch(() => undefined);
    await Promise.all(this.loops);
  }

  /** Records one seal (exported for tests). */
  async record(workspaceId: string, runId: string, seal: SealMessage): Promise<void> {
    await handleCommand(
      this.store,
      runLogDecider,
      { workspaceId, type: AggregateTypes.runlog, id: runId },
      {
        type: 'SealRunLog',
        runId,
        lineCount: seal.lineCount,
        bytes: seal.bytes,
        sealedBy: seal.by,
        sealedAt: new Date(seal.ts).toISOString(),
      },
      { commandId: `seal:${runId}`, actor: 'logs' },
      { maxRetries: 10 },
    );
  }

  private async recordLoop(): Promise<void> {
    const stream = logsStreamName(this.loc);
    while (!this.stopping) {
      try {
        const jsm = await jetstreamManager(this.nc);
        try {
          await jsm.consumers.info(stream, CONSUMER);
        } catch {
          await jsm.consumers.add(stream, {
            durable_name: CONSUMER,
            ack_policy: AckPolicy.Explicit,
            deliver_policy: DeliverPolicy.All,
            filter_subject: allSealsSubject(this.loc.subjectPrefix),
            ack_wait: 30 * 1_000_000_000,
            max_ack_pending: 1000,
          });
        }
        const consumer = await jetstream(this.nc).consumers.get(stream, CONSUMER);
        // Short pulls: one left on a consumer leader that died (a cluster node lost) is re-sent within ~4 s.
        this.messages = await consumer.consume({
          max_messages: 100,
          abort_on_missing_resource: true,
          expires: 4_000,
        });
        if (this.stopping) break;
        for await (const m of this.messages) {
          const where = parseSealSubject(this.loc.subjectPrefix, m.subject);
          const seal = parseLogMessage(m.data);
          if (!where || !UUID.test(where.workspaceId) || !UUID.test(where.runId) || seal?.type !== 'end') {
            this.log(`ignoring a malformed seal on ${m.subject}`);
            m.term();
            continue;
          }
          try {
            await this.record(where.workspaceId, where.runId, seal);
            m.ack();
          } catch (err) {
            this.log(`recording the seal of run ${where.runId} failed (retried): ${String(err)}`);
            m.nak(1_000);
          }
        }
      } catch (err) {
        if (this.stopping) break;
        this.log(`seal consumer: ${String(err)}`);
        await sleep(1_000);
      }
    }
  }

  /** Seals runs that ended more than `graceMs` ago with no seal; returns how many it sealed. */
  async sweep(now = Date.now()): Promise<number> {
    const rows = await this.db
      .selectFrom('run_logs')
      .select(['run_id', 'workspace_id'])
      .where('sealed_at', 'is', null)
      .where('ended_at', 'is not', null)
      .where('ended_at', '<', new Date(now - this.graceMs))
      .orderBy('ended_at')
      .limit(100)
      .execute();
    let sealed = 0;
    const js = jetstream(this.nc);
    for (const r of rows) {
      if (this.stopping) break;
      const stats = await this.reader.stats(r.workspace_id, r.run_id);
      if (stats.seal) {
        // Sealed in the stream but not recorded yet (the recorder is behind or failing): record it.
        await this.record(r.workspace_id, r.run_id, stats.seal);
        continue;
      }
      const seal: SealMessage = {
        type: 'end',
        lineCount: stats.lineCount,
        bytes: stats.bytes,
        ts: Date.now(),
        by: 'logs',
      };
      await js.publish(
        runSealSubject(this.loc.subjectPrefix, r.workspace_id, r.run_id),
        JSON.stringify(seal),
        {
          msgID: `${r.run_id}:end`,
        },
      );
      sealed++;
    }
    return sealed;
  }
}
