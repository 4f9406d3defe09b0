import { describe, it } from 'node:test';
import type { RunEvent, RunStateSummary, RunTraceSummary } from './run.events.js';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import { runDecider, type RunCommand } from './run.decider.js';

const runId = '33333333-3333-4333-8333-333333333333';
const jobId = '44444444-4444-4444-8444-444444444444';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const t = '2026-01-01T00:00:00.000Z';
const claim: RunCommand = { type: 'ClaimRun', runId, jobId, number: 3, workerId: 'w1', host: 'h' };
const starting: RunEvent = {
  type: 'RunStarting',
  data: { runId, jobId, number: 3, workerId: 'w1', host: 'h' },
};
const started: RunEvent = { type: 'RunStarted', data: { pid: 42, command: 'python a.py', startedAt: t } };
const finalizing: RunEvent = { type: 'RunFinalizing', data: { exitCode: 0, signal: null, endedAt: t } };
const completed: RunEvent = { type: 'RunCompleted', data: { exitCode: 0, durationMs: 10 } };
const cancelRequested: RunEvent = { type: 'RunCancelRequested', data: { by: user } };
const fail = (reason: 'timeout' | 'worker_lost' | 'exit_code'): RunCommand => ({
  type: 'FailRun',
  reason,
  message: reason,
  exitCode: null,
  signal: null,
  durationMs: null,
  stderrTail: [],
  endedAt: null,
});
const s = deciderSpec(runDecider);

describe('run decider', () => {
  it('lets exactly the first claim start the run', () => {
    s.given([]).when(claim).then([starting]);
    s.given([starting])
      .when({ ...claim, workerId: 'w2' })
      .thenNothing();
    s.given([starting, started, finalizing, completed]).when(claim).thenNothing();
  });

  it('goes starting → running → finalizing → completed', () => {
    s.given([starting])
      .when({ type: 'MarkRunning', pid: 42, command: 'python a.py', startedAt: t })
      .then([started]);
    s.given([starting, started])
      .when({ type: 'MarkFinalizing', exitCode: 0, signal: null, endedAt: t })
      .then([finalizing]);
    s.given([starting, started, finalizing])
      .when({ type: 'CompleteRun', exitCode: 0, durationMs: 10 })
      .then([completed]);
    // Out of order commands are ignored.
    s.given([starting]).when({ type: 'CompleteRun', exitCode: 0, durationMs: 10 }).thenNothing();
  });

  it('an interactive run is running with its app address (RunAppReady with RunStarted), and completes idle', () => {
    const app = {
      runId,
      jobId,
      appType: 'marimo' as const,
      address: { host: '10.0.0.7', port: 40123 },
      basePath: `/i/${jobId}`,
      readyAt: t,
      idleTimeoutSeconds: 300,
    };
    s.given([starting])
      .when({ type: 'MarkRunning', pid: 42, command: 'python launcher.py', startedAt: t, app })
      .then([
        { type: 'RunStarted', data: { pid: 42, command: 'python launcher.py', startedAt: t } },
        { type: 'RunAppReady', data: app },
      ]);
    s.given([starting, started, { type: 'RunAppReady', data: app }, finalizing])
      .when({ type: 'CompleteRun', exitCode: 143, durationMs: 10, reason: 'idle' })
      .then([{ type: 'RunCompleted', data: { exitCode: 143, durationMs: 10, reason: 'idle' } }]);
  });

  it('records the setup phase of a starting run only, which stays starting', () => {
    const env = 'a'.repeat(64);
    const setup: RunCommand = {
      type: 'RecordSetup',
      source: 'requirements.txt',
      environment: env,
      ok: true,
      cacheHit: true,
      durationMs: 12,
    };
    const setUp: RunEvent = {
      type: 'RunSetUp',
      data: {
        phase: 'setup',
        source: 'requirements.txt',
        environment: env,
        ok: true,
        cacheHit: true,
        durationMs: 12,
      },
    };
    s.given([starting]).when(setup).then([setUp]);
    // Still starting: the process can be marked running after it.
    s.given([starting, setUp])
      .when({ type: 'MarkRunning', pid: 42, command: 'python a.py', startedAt: t })
      .then([started]);
    s.given([]).when(setup).thenNothing();
    s.given([starting, cancelRequested]).when(setup).thenNothing();
    s.given([starting, started]).when(setup).thenNothing();
  });

  it('fails an active run once', () => {
    s.given([starting, started])
      .when(fail('timeout'))
      .then([
        {
          type: 'RunFailed',
          data: {
            reason: 'timeout',
            message: 'timeout',
            exitCode: null,
            signal: null,
            durationMs: null,
            stderrTail: [],
            endedAt: null,
          },
        },
      ]);
    s.given([starting, started, finalizing, completed]).when(fail('worker_lost')).thenNothing();
    // A cancelling run fails only if its worker is lost.
    s.given([starting, started, cancelRequested]).when(fail('timeout')).thenNothing();
    s.given([starting, started, cancelRequested])
      .when(fail('worker_lost'))
      .then([
        {
          type: 'RunFailed',
          data: {
            reason: 'worker_lost',
            message: 'worker_lost',
            exitCode: null,
            signal: null,
            durationMs: null,
            stderrTail: [],
            endedAt: null,
          },
        },
      ]);
  });

  it('cancels: a pending run at once, an active one through cancelling', () => {
    s.given([])
      .when({ type: 'RequestCancel', by: user, known: { number: 3 } })
      .then([
        {
          type: 'RunCancelled',
          data: {
            by: user,
            message: 'cancelled before it started',
            exitCode: null,
            signal: null,
            durationMs: null,
            endedAt: null,
          },
        },
      ]);
    s.given([]).when({ type: 'RequestCancel', by: user, known: null }).thenThrows(NotFoundError);
    s.given([starting, started])
      .when({ type: 'RequestCancel', by: user, known: { number: 3 } })
      .then([cancelRequested]);
    s.given([starting, started, cancelRequested])
      .when({ type: 'RequestCancel', by: user, known: { number: 3 } })
      .thenNothing();
    s.given([starting, started, cancelRequested])
      .when({
        type: 'ConfirmCancelled',
        message: 'process group ended',
        exitCode: null,
        signal: 'SIGTERM',
        durationMs: 5,
        endedAt: t,
      })
      .then([
        {
          type: 'RunCancelled',
          data: {
            by: null,
            message: 'process group ended',
            exitCode: null,
            signal: 'SIGTERM',
            durationMs: 5,
            endedAt: t,
          },
        },
      ]);
    // A run that went on to running after cancel was requested stays cancelling.
    s.given([starting, cancelRequested])
      .when({ type: 'MarkRunning', pid: 1, command: 'x', startedAt: t })
      .thenNothing();
  });

  it('refuses to cancel a finished run, saying "terminal state" but not first', () => {
    s.given([starting, started, finalizing, completed])
      .when({ type: 'RequestCancel', by: user, known: { number: 3 } })
      .thenThrows(DomainError, /^run 3 is already in a terminal state \(completed\)$/);
  });

  it('records the pipelines once, while finalizing', () => {
    const report: RunCommand = { type: 'ReportPipelines', pipelines: [], warnings: ['w'] };
    const reported: RunEvent = { type: 'PipelineReported', data: { pipelines: [], warnings: ['w'] } };
    s.given([starting, started, finalizing]).when(report).then([reported]);
    s.given([starting, started, finalizing, reported]).when(report).thenNothing();
    s.given([starting, started]).when(report).thenNothing();
    // It does not change the status.
    s.given([starting, started, finalizing, reported])
      .when({ type: 'CompleteRun', exitCode: 0, durationMs: 10 })
      .then([completed]);
  });

  it('records a job result once, while finalizing, and never ends the run by it', () => {
    const result = { jobRef: 'jobs.a.b', type: 'dict', value: '{"rows": 3}', truncated: false, bytes: 11 };
    const report: RunCommand = { type: 'ReportResult', result };
    const reported: RunEvent = { type: 'RunResultReported', data: result };
    s.given([starting, started, finalizing]).when(report).then([reported]);
    s.given([starting, started, finalizing, reported]).when(report).thenNothing();
    s.given([starting, started]).when(report).thenNothing();
    s.given([starting, started, finalizing, reported])
      .when({ type: 'CompleteRun', exitCode: 0, durationMs: 10 })
      .then([completed]);
  });

  it('records beacon traces and states while the run is in progress, at most 50 of each', () => {
    const trace: RunTraceSummary = {
      transactionId: 't1',
      pipelineName: 'p',
      startedAt: null,
      finishedAt: null,
      durationMs: null,
      dltVersion: '1.26.0',
      destination: 'duckdb',
      datasetName: 'd',
      failed: false,
      steps: [],
      loadIds: ['1.2'],
      rowCounts: { items: 5 },
      exceptions: [],
      truncated: false,
    };
    const state: RunStateSummary = {
      pipelineName: 'p',
      destination: 'duckdb',
      datasetName: 'd',
      schemas: [],
      truncated: false,
    };
    const reportTrace: RunCommand = { type: 'ReportTrace', trace };
    const traced: RunEvent = { type: 'RunTraceReported', data: trace };
    s.given([starting]).when(reportTrace).then([traced]);
    s.given([starting, started]).when(reportTrace).then([traced]);
    s.given([starting, started, traced]).when(reportTrace).then([traced]);
    s.given([starting, started, finalizing]).when(reportTrace).then([traced]);
    // Not before a worker claimed it, never after its end.
    s.given([]).when(reportTrace).thenNothing();
    s.given([starting, started, finalizing, completed]).when(reportTrace).thenNothing();
    s.given([starting, started, ...Array.from({ length: 50 }, () => traced)])
      .when(reportTrace)
      .thenNothing();
    const reportState: RunCommand = { type: 'ReportState', state };
    const stated: RunEvent = { type: 'RunStateReported', data: state };
    s.given([starting, started, traced]).when(reportState).then([stated]);
    s.given([starting, started, finalizing, completed]).when(reportState).thenNothing();
    // A report changes no status.
    s.given([starting, started, traced, stated])
      .when({ type: 'MarkFinalizing', exitCode: 0, signal: null, endedAt: t })
      .then([finalizing]);
  });

  it('skips only a run nobody claimed', () => {
    s.given([])
      .when({ type: 'SkipRun', reason: 'previous run still running' })
      .then([{ type: 'RunSkipped', data: { reason: 'previous run still running' } }]);
    s.given([starting]).when({ type: 'SkipRun', reason: 'x' }).thenNothing();
  });
});
