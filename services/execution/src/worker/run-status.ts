import type { Logger } from '@nestjs/common';
import { constants } from 'node:os';
import type { RunFailureReason, RunStatus } from '#libs/contracts';
import { isTransientNatsError } from '#libs/nats';
import { sleep, type ProcessExit } from '../executor/index.js';
import type { RunCommand, RunState } from '../run/run.decider.js';
import type { RunAggregates } from '../run/run.handler.js';
import type { PipelineCollection } from './pipeline-report.js';
import type { RunResult } from '../run/run.events.js';

/** Why a worker ends a run before its process ends by itself. */
export type EndReason =
  | 'cancel'
  | 'timeout'
  | 'lost'
  | 'shutdown'
  /** An interactive app had no open connection for its idle time: the run completes (reason idle). */
  | 'idle'
  /** An interactive app did not answer within its startup time. */
  | 'startup';

/** How the run's process ended, as the supervisor saw it. */
export interface ProcessOutcome {
  exit: ProcessExit;
  endReason: EndReason | undefined;
  stderrTail: string[];
  /** The run's timeout (for the message of a timed-out run). */
  timeoutSeconds: number;
  pid: number | undefined;
  /** What the run's pipelines left (undefined: the run never got a directory). */
  collectPipelines: (() => Promise<PipelineCollection>) | undefined;
  /** Manifest jobs run by dlt's job launcher: what the job's function returned (read after the exit). */
  result?: () => RunResult | undefined;
}

/**
 * Records one run's status on its aggregate: every command of the run, retried while NATS cannot
 * answer, and the mapping of how its process ended to the run's final events.
 */
export class RunStatusRecorder {
  lastSeq = 0;
  status: RunStatus = 'pending';
  /** When the run's process was spawned (ms since the epoch). */
  spawnedAt: number | undefined;

  constructor(
    readonly workspaceId: string,
    readonly runId: string,
    readonly actor: string,
    readonly commands: RunAggregates,
    private readonly logger: Logger,
    /** Told each status the run's aggregate answered with (a cancel request, an end elsewhere). */
    private readonly onStatus: (status: RunStatus) => void,
  ) {}

  /**
   * Appends to the run, retrying (for up to a minute) while NATS cannot answer: a cluster node
   * restarting, a leader election. The command id makes a retry of a stored command a no-op. Without
   * the retry a run whose process had finished was left unended, its lease released, and the reaper
   * failed it as worker_lost (seen in test/durability/cluster-faults under a cluster restart).
   */
  async cmd(command: RunCommand, commandId: string): Promise<RunState> {
    return (await this.handle(command, commandId)).state;
  }

  /** As cmd; true when the command stored an event (or had stored it: a retry). */
  async stored(command: RunCommand, commandId: string): Promise<boolean> {
    const r = await this.handle(command, commandId);
    return r.events.length > 0;
  }

  private async handle(command: RunCommand, commandId: string) {
    const until = Date.now() + 60_000;
    let r: Awaited<ReturnType<RunAggregates['handle']>>;
    for (let attempt = 0; ; attempt++) {
      try {
        r = await this.commands.handle(this.workspaceId, this.runId, command, {
          commandId: `${this.runId}:${commandId}`,
          actor: this.actor,
        });
        break;
      } catch (err) {
        if (!isTransientNatsError(err) || Date.now() > until) throw err;
        this.logger.warn(`run ${this.runId}: ${command.type} not stored yet (${String(err)}), retrying`);
        await sleep(Math.min(250 * 2 ** attempt, 2_000));
      }
    }
    this.lastSeq = Math.max(this.lastSeq, r.seq);
    this.observe(r.state.status);
    return r;
  }

  observe(status: RunStatus): void {
    this.status = status;
    this.onStatus(status);
  }

  private durationOf(exit: ProcessExit | null): number | null {
    return exit && this.spawnedAt !== undefined ? exit.at - this.spawnedAt : null;
  }

  async fail(
    reason: RunFailureReason,
    message: string,
    exit: ProcessExit | null,
    stderrTail: string[],
  ): Promise<void> {
    const state = await this.cmd(
      {
        type: 'FailRun',
        reason,
        message,
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        durationMs: this.durationOf(exit),
        stderrTail,
        endedAt: exit ? new Date(exit.at).toISOString() : null,
      },
      `fail:${reason}`,
    );
    if (state.status === 'cancelling')
      await this.confirmCancelled(exit, 'the run ended while being cancelled');
  }

  async confirmCancelled(exit: ProcessExit | null, message: string): Promise<void> {
    await this.cmd(
      {
        type: 'ConfirmCancelled',
        message,
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        durationMs: this.durationOf(exit),
        endedAt: exit ? new Date(exit.at).toISOString() : null,
      },
      'cancelled',
    );
  }

  /** An interactive app stopped for being idle: `completed`, reason `idle`, whatever its exit status on SIGTERM. */
  private async completeIdle(exit: ProcessExit): Promise<void> {
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
      return this.confirmCancelled(exit, 'the app stopped while the run was being cancelled');
    const exitCode = exit.code ?? 128 + (exit.signal ? (constants.signals[exit.signal] ?? 0) : 0);
    state = await this.cmd(
      { type: 'CompleteRun', exitCode, durationMs: this.durationOf(exit), reason: 'idle' },
      'completed',
    );
    if (state.status === 'cancelling')
      await this.confirmCancelled(exit, 'the app stopped while the run was being cancelled');
  }

  /** The run's final events, from how its process ended. */
  async finish(o: ProcessOutcome): Promise<void> {
    const { exit, stderrTail: tail } = o;
    switch (o.endReason) {
      case 'cancel':
        return this.confirmCancelled(exit, `cancelled: the processes of pid ${o.pid} ended`);
      case 'timeout':
        return this.fail(
          'timeout',
          `the run exceeded its timeout of ${o.timeoutSeconds} s and was stopped`,
          exit,
          tail,
        );
      case 'shutdown':
        return this.fail('worker_lost', 'the worker shut down while the run was in progress', exit, tail);
      case 'lost':
        return; // ended elsewhere (the reaper failed it): nothing to add
      case 'startup':
        return this.fail('app_startup', 'the app did not answer HTTP in time and was stopped', exit, tail);
      case 'idle':
        return this.completeIdle(exit);
      case undefined:
        break;
      default: {
        const unknown: never = o.endReason;
        throw new Error(`unknown end reason ${String(unknown)}`);
      }
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
    if (o.collectPipelines) {
      const collected = await o.collectPipelines();
      if (collected.pipelines.length > 0 || collected.warnings.length > 0) {
        state = await this.cmd(
          { type: 'ReportPipelines', pipelines: collected.pipelines, warnings: collected.warnings },
          'pipelines',
        );
        if (state.status === 'cancelling')
          return this.confirmCancelled(exit, 'the process ended while the run was being cancelled');
      }
    }
    const result = o.result?.();
    if (result) {
      state = await this.cmd({ type: 'ReportResult', result }, 'result');
      if (state.status === 'cancelling')
        return this.confirmCancelled(exit, 'the process ended while the run was being cancelled');
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
