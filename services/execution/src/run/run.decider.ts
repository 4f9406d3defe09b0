import { DomainError, NotFoundError, type Decider } from '#libs/eventstore';
import {
  TERMINAL_RUN_STATUSES,
  type AppType,
  type PipelineReport,
  type RunEndReason,
  type RunFailureReason,
  type RunStatus,
} from '#libs/contracts';
import {
  MAX_RUN_TELEMETRY_REPORTS,
  type RunEvent,
  type RunResult,
  type RunStateSummary,
  type RunTraceSummary,
} from './run.events.js';

/**
 * The `run` aggregate (id = run id). A run is born `pending` by RunRequested on its job's stream;
 * this aggregate starts with the claim of a worker (RunStarting, appended at expected sequence 0:
 * exactly one claim wins), or with a cancel / skip of a run nobody claimed yet.
 */
export type RunCommand =
  | { type: 'ClaimRun'; runId: string; jobId: string; number: number; workerId: string; host: string }
  | {
      type: 'MarkRunning';
      pid: number;
      command: string;
      startedAt: string;
      /** Interactive runs: the app answered at this worker endpoint (RunAppReady goes with RunStarted). */
      app?: {
        runId: string;
        jobId: string;
        appType: AppType;
        address: { host: string; port: number };
        basePath: string;
        readyAt: string;
        idleTimeoutSeconds: number;
      };
    }
  | { type: 'MarkFinalizing'; exitCode: number | null; signal: string | null; endedAt: string }
  | { type: 'CompleteRun'; exitCode: number; durationMs: number | null; reason?: RunEndReason }
  | {
      type: 'FailRun';
      reason: RunFailureReason;
      message: string;
      exitCode: number | null;
      signal: string | null;
      durationMs: number | null;
      stderrTail: string[];
      endedAt: string | null;
    }
  /** `known`: the run exists (it is in the runs read model) with this number; a pending run has no events here yet. */
  | { type: 'RequestCancel'; by: string; known: { number: number } | null }
  | {
      type: 'ConfirmCancelled';
      message: string;
      exitCode: number | null;
      signal: string | null;
      durationMs: number | null;
      endedAt: string | null;
    }
  | { type: 'SkipRun'; reason: string }
  | {
      type: 'RecordSetup';
      source: 'uv.lock' | 'pyproject.toml' | 'requirements.txt' | 'requirements.json';
      environment: string;
      ok: boolean;
      cacheHit: boolean;
      durationMs: number;
    }
  | { type: 'ReportPipelines'; pipelines: PipelineReport[]; warnings: string[] }
  | { type: 'ReportResult'; result: RunResult }
  /** What the run's process sent its beacon (docs/runs-telemetry.md): while it is alive. */
  | { type: 'ReportTrace'; trace: RunTraceSummary }
  | { type: 'ReportState'; state: RunStateSummary };

export interface RunState {
  /** `pending`: no event on this aggregate yet (nobody claimed the run). */
  status: RunStatus;
  number: number | undefined;
  workerId: string | undefined;
  /** Set once the process was reported started. */
  started: boolean;
  pipelinesReported: boolean;
  resultReported: boolean;
  tracesReported: number;
  statesReported: number;
}

const initialState = (): RunState => ({
  status: 'pending',
  number: undefined,
  workerId: undefined,
  started: false,
  pipelinesReported: false,
  resultReported: false,
  tracesReported: 0,
  statesReported: 0,
});

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL_RUN_STATUSES.includes(status);
}

type Command<T extends RunCommand['type']> = Extract<RunCommand, { type: T }>;

function unknownType(x: never): never {
  throw new Error(`unknown type ${JSON.stringify(x)}`);
}

function evolve(state: RunState, event: RunEvent): RunState {
  switch (event.type) {
    case 'RunStarting':
      return { ...state, status: 'starting', number: event.data.number, workerId: event.data.workerId };
    case 'RunStarted':
      return { ...state, status: 'running', started: true };
    case 'RunAppReady':
      return state;
    case 'RunFinalizing':
      return { ...state, status: 'finalizing' };
    case 'RunCompleted':
      return { ...state, status: 'completed' };
    case 'RunFailed':
      return { ...state, status: 'failed' };
    case 'RunCancelRequested':
      return { ...state, status: 'cancelling' };
    case 'RunCancelled':
      return { ...state, status: 'cancelled' };
    case 'RunSkipped':
      return { ...state, status: 'skipped' };
    case 'PipelineReported':
      return { ...state, pipelinesReported: true };
    case 'RunSetUp':
      return state;
    case 'RunResultReported':
      return { ...state, resultReported: true };
    case 'RunTraceReported':
      return { ...state, tracesReported: state.tracesReported + 1 };
    case 'RunStateReported':
      return { ...state, statesReported: state.statesReported + 1 };
    default:
      return unknownType(event);
  }
}

/** The detail the dlt CLI looks for: "terminal state", but not as its first words. */
export function terminalStateMessage(number: number | undefined, status: RunStatus): string {
  return `run ${number ?? ''} is already in a terminal state (${status})`.replace('run  is', 'run is');
}

/** Claimed by another worker, cancelled or skipped before anyone claimed it: nothing to do. */
export function decideClaimRun(c: Command<'ClaimRun'>, state: RunState): RunEvent[] {
  if (state.status !== 'pending') return [];
  return [
    {
      type: 'RunStarting',
      data: { runId: c.runId, jobId: c.jobId, number: c.number, workerId: c.workerId, host: c.host },
    },
  ];
}

export function decideMarkRunning(c: Command<'MarkRunning'>, state: RunState): RunEvent[] {
  if (state.status !== 'starting') return [];
  const started: RunEvent = {
    type: 'RunStarted',
    data: { pid: c.pid, command: c.command, startedAt: c.startedAt },
  };
  return c.app ? [started, { type: 'RunAppReady', data: c.app }] : [started];
}

export function decideMarkFinalizing(c: Command<'MarkFinalizing'>, state: RunState): RunEvent[] {
  if (state.status !== 'running') return [];
  return [{ type: 'RunFinalizing', data: { exitCode: c.exitCode, signal: c.signal, endedAt: c.endedAt } }];
}

export function decideCompleteRun(c: Command<'CompleteRun'>, state: RunState): RunEvent[] {
  if (state.status !== 'finalizing') return [];
  return [
    {
      type: 'RunCompleted',
      data: { exitCode: c.exitCode, durationMs: c.durationMs, ...(c.reason ? { reason: c.reason } : {}) },
    },
  ];
}

export function decideFailRun(c: Command<'FailRun'>, state: RunState): RunEvent[] {
  const { type: _t, ...data } = c;
  if (state.status === 'starting' || state.status === 'running' || state.status === 'finalizing')
    return [{ type: 'RunFailed', data }];
  // A cancel in progress ends as failed only when its worker is gone (nobody can confirm the process ended).
  if (state.status === 'cancelling' && c.reason === 'worker_lost') return [{ type: 'RunFailed', data }];
  return [];
}

export function decideRequestCancel(c: Command<'RequestCancel'>, state: RunState): RunEvent[] {
  if (isTerminal(state.status))
    throw new DomainError(terminalStateMessage(state.number ?? c.known?.number, state.status));
  if (state.status === 'cancelling') return [];
  if (state.status === 'pending') {
    if (!c.known) throw new NotFoundError('run not found');
    // Nobody claimed it: it never ran, so it is cancelled at once (a later claim finds it cancelled).
    return [
      {
        type: 'RunCancelled',
        data: {
          by: c.by,
          message: 'cancelled before it started',
          exitCode: null,
          signal: null,
          durationMs: null,
          endedAt: null,
        },
      },
    ];
  }
  return [{ type: 'RunCancelRequested', data: { by: c.by } }];
}

export function decideConfirmCancelled(c: Command<'ConfirmCancelled'>, state: RunState): RunEvent[] {
  if (state.status !== 'cancelling') return [];
  const { type: _t, ...rest } = c;
  return [{ type: 'RunCancelled', data: { by: null, ...rest } }];
}

export function decideSkipRun(c: Command<'SkipRun'>, state: RunState): RunEvent[] {
  if (state.status !== 'pending') return [];
  return [{ type: 'RunSkipped', data: { reason: c.reason } }];
}

/** The setup phase (dependencies) of a claimed run, before its process starts: it stays `starting`. */
export function decideRecordSetup(c: Command<'RecordSetup'>, state: RunState): RunEvent[] {
  if (state.status !== 'starting') return [];
  const { type: _t, ...data } = c;
  return [{ type: 'RunSetUp', data: { phase: 'setup', ...data } }];
}

/** Once, while the worker collects what the process left. */
export function decideReportPipelines(c: Command<'ReportPipelines'>, state: RunState): RunEvent[] {
  if (state.status !== 'finalizing' || state.pipelinesReported) return [];
  return [{ type: 'PipelineReported', data: { pipelines: c.pipelines, warnings: c.warnings } }];
}

/** A manifest job's result (what its function returned): once, while the worker finalizes the run. */
export function decideReportResult(c: Command<'ReportResult'>, state: RunState): RunEvent[] {
  if (state.status !== 'finalizing' || state.resultReported) return [];
  return [{ type: 'RunResultReported', data: c.result }];
}

/** The run's process is alive (or its end is being collected): its beacon reports are taken. */
function takesReports(state: RunState): boolean {
  return (
    state.status === 'starting' ||
    state.status === 'running' ||
    state.status === 'finalizing' ||
    state.status === 'cancelling'
  );
}

/** A trace the run sent its beacon: while the run is in progress, at most MAX_RUN_TELEMETRY_REPORTS. */
export function decideReportTrace(c: Command<'ReportTrace'>, state: RunState): RunEvent[] {
  if (!takesReports(state) || state.tracesReported >= MAX_RUN_TELEMETRY_REPORTS) return [];
  return [{ type: 'RunTraceReported', data: c.trace }];
}

/** A pipeline state the run sent its beacon: same rules as a trace. */
export function decideReportState(c: Command<'ReportState'>, state: RunState): RunEvent[] {
  if (!takesReports(state) || state.statesReported >= MAX_RUN_TELEMETRY_REPORTS) return [];
  return [{ type: 'RunStateReported', data: c.state }];
}

function decide(command: RunCommand, state: RunState): RunEvent[] {
  switch (command.type) {
    case 'ClaimRun':
      return decideClaimRun(command, state);
    case 'MarkRunning':
      return decideMarkRunning(command, state);
    case 'MarkFinalizing':
      return decideMarkFinalizing(command, state);
    case 'CompleteRun':
      return decideCompleteRun(command, state);
    case 'FailRun':
      return decideFailRun(command, state);
    case 'RequestCancel':
      return decideRequestCancel(command, state);
    case 'ConfirmCancelled':
      return decideConfirmCancelled(command, state);
    case 'SkipRun':
      return decideSkipRun(command, state);
    case 'ReportPipelines':
      return decideReportPipelines(command, state);
    case 'RecordSetup':
      return decideRecordSetup(command, state);
    case 'ReportResult':
      return decideReportResult(command, state);
    case 'ReportTrace':
      return decideReportTrace(command, state);
    case 'ReportState':
      return decideReportState(command, state);
    default:
      return unknownType(command);
  }
}

export const runDecider: Decider<RunState, RunCommand, RunEvent> = { initialState, evolve, decide };
