import type { Subscription } from '@nats-io/transport-node';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RunFailureReason, RunStatus } from '#libs/contracts';
import { eventTypesOf, Headers } from '#libs/eventstore';
import { sleep, type ProcessExit, type RunProcess } from '../executor/index.js';
import { isTerminal } from '../run/run.decider.js';
import { runRef } from '../run/run.handler.js';
import { OutputCapture } from './output.js';
import { collectRunPipelines, exitHookDirOf, readRunReports, type RunReports } from './pipeline-report.js';
import { prepareRun, type PreparedRun } from './run-environment.js';
import { launcherCommand, readRunResult } from './launcher.js';
import type { RunResult } from '../run/run.events.js';
import { reapRunProcess, spawnRunProcess, terminateRunProcess, writeRunMeta } from './run-process.js';
import type { RunRequestedEvent } from './run-requested.js';
import { RunStatusRecorder, type EndReason } from './run-status.js';
import type { Worker } from './worker.js';
import {
  applyAppLauncher,
  prepareApp,
  useAppInterpreter,
  type AppLaunch,
} from './interactive/app-prepare.js';
import { AppSession } from './interactive/app-session.js';
import { runStartLatency, secondsSince } from '#libs/observability';

const TERMINAL_EVENTS = new Set(['RunCompleted', 'RunFailed', 'RunCancelled', 'RunSkipped']);

/**
 * One run in one worker: claim, set up, spawn, supervise (lease, timeout, cancel, the `starting`
 * hold), report, clean up.
 */
export class RunSupervisor {
  readonly runId: string;
  private readonly ws: string;
  private readonly status: RunStatusRecorder;
  private sub: Subscription | undefined;
  private proc: RunProcess | undefined;
  private endReason: EndReason | undefined;
  private terminating: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private capture: OutputCapture | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private done: Promise<void> | undefined;
  private closed: Promise<void> = Promise.resolve();
  private prepared: PreparedRun | undefined;
  /** Interactive runs: the app's endpoint, readiness and idle watch. */
  private app: AppSession | undefined;
  /** Interactive runs: why the app never answered (its run fails with `app_startup`). */
  private appFailure: string | undefined;
  private readonly runDir: string;
  private readonly metaFile: string;
  /** Lets the dependency environment be garbage-collected again once the run ended. */
  private releaseEnvironment: (() => void) | undefined;
  /** Called once the run's processes are gone: its slot is free for the next run. */
  private processesGone: () => void = () => undefined;
  /** Reports the run's beacon stored or tried (the command id of each). */
  private beaconReports = 0;

  constructor(
    private readonly w: Worker,
    private readonly req: RunRequestedEvent,
  ) {
    this.runId = req.data.runId;
    this.ws = req.workspaceId;
    this.runDir = join(w.workDir, this.runId);
    this.metaFile = join(w.workDir, `${this.runId}.json`);
    this.status = new RunStatusRecorder(this.ws, this.runId, `worker:${w.id}`, w.commands, w.logger, (s) =>
      this.observe(s),
    );
  }

  private get spawnedAt(): number | undefined {
    return this.status.spawnedAt;
  }

  /** Reacts to a status someone else set: a cancel request, or the run ended elsewhere (the reaper). */
  private observe(status: RunStatus): void {
    if (status === 'cancelling') this.end('cancel');
    else if (isTerminal(status) && this.spawnedAt !== undefined && !this.endReason) this.end('lost');
  }

  /** Subscribes to the run's subject (cancel requests arrive there), then claims the run. */
  async claim(): Promise<boolean> {
    const subject = this.w.deps.store.subjectOf(runRef(this.ws, this.runId));
    this.sub = this.w.deps.nats.subscribe(subject, {
      callback: (_err, msg) => {
        if (msg.headers?.get(Headers.Actor) === this.status.actor) return;
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
      { commandId: `${this.runId}:claim:${this.w.id}`, actor: this.status.actor },
    );
    this.status.lastSeq = r.seq;
    this.status.status = r.state.status;
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
    const ref = runRef(this.ws, this.runId);
    const seq = await this.w.deps.store.lastSequenceOf(ref);
    if (seq > this.status.lastSeq) {
      const { state, seq: lastSeq } = await this.w.commands.load(this.ws, this.runId);
      this.status.lastSeq = lastSeq;
      this.status.observe(state.status);
    }
  }

  private end(reason: EndReason): void {
    if (this.endReason) return;
    this.endReason = reason;
    this.wake?.();
    if (this.proc !== undefined) void this.terminate();
  }

  private terminate(graceMs = this.w.opts.killGraceMs): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) return Promise.resolve();
    this.terminating ??= (async () => {
      this.capture?.note(`stopping the run (${this.endReason}): SIGTERM to its processes`);
      await terminateRunProcess(proc, graceMs, (line) => this.capture?.note(line));
    })();
    return this.terminating;
  }

  /** The worker stops: end the process and record the run as lost with this worker. */
  async shutdown(): Promise<void> {
    this.end('shutdown');
    if (this.proc !== undefined) await this.terminate(Math.min(this.w.opts.killGraceMs, 3_000));
    await this.done?.catch(() => undefined);
  }

  /** A run this worker claimed but may not start (an interactive limit): it fails at once with the reason. */
  async refuse(reason: RunFailureReason, message: string): Promise<void> {
    await this.status.fail(reason, message, null, []);
  }

  /** `processesGone` is called once the run's processes are gone: its slot is free for the next run. */
  run(processesGone: () => void = () => undefined): Promise<void> {
    this.processesGone = processesGone;
    this.done = this.execute();
    return this.done;
  }

  private async execute(): Promise<void> {
    const d = this.req.data;
    const startedSetup = Date.now();
    const meta = { runId: this.runId, workspaceId: this.ws, workerId: this.w.id };
    try {
      await this.w.deps.leases
        .put(this.runId, this.leaseInfo())
        .catch((err: unknown) => this.w.logger.warn(`lease of ${this.runId}: ${String(err)}`));
      writeRunMeta(this.metaFile, { ...meta, pid: null });
      let prepared: PreparedRun;
      let launch: AppLaunch | undefined;
      try {
        prepared = await prepareRun({
          req: this.req,
          runDir: this.runDir,
          dataDir: this.w.opts.dataDir,
          tools: this.w.tools,
          materializer: this.w.deps.materializer,
          executor: this.w.deps.executor,
        });
        this.prepared = prepared;
        if (d.kind === 'interactive')
          launch = await prepareApp({
            req: this.req,
            runDir: this.runDir,
            dataDir: this.w.opts.dataDir,
            prepared,
            tools: this.w.tools,
            executor: this.w.deps.executor,
          });
      } catch (err) {
        if (this.endReason === 'cancel')
          return void (await this.status.confirmCancelled(null, 'cancelled before the process started'));
        await this.status.fail('setup_error', err instanceof Error ? err.message : String(err), null, []);
        return;
      }
      if (this.endReason === 'cancel')
        return void (await this.status.confirmCancelled(null, 'cancelled before the process started'));
      if (this.endReason === 'shutdown')
        return void (await this.status.fail(
          'worker_lost',
          'the worker shut down before the process started',
          null,
          [],
        ));

      const ref = { workspaceId: this.ws, runId: this.runId };
      const output = this.w.output;
      // Batch runs report what their pipelines did to the worker's beacon (docs/runs-telemetry.md):
      // its token is masked like the configuration's secrets.
      const beaconToken = launch ? undefined : this.w.beacon.tokenOf(this.runId);
      const capture = new OutputCapture(
        ref,
        output,
        beaconToken ? [...prepared.config.secretValues, beaconToken] : prepared.config.secretValues,
        this.w.opts.logMaxBytes ?? Number.POSITIVE_INFINITY,
      );
      this.capture = capture;
      await output.begin(ref);
      for (const warning of prepared.config.warnings) capture.note(warning);
      // The `setup` phase: the deployment's declared dependencies (docs/dependencies.md).
      const readable = [...this.w.tools.toolPaths];
      if (prepared.dependencies) {
        const ok = await this.setUpDependencies(prepared, capture, readable);
        if (!ok) {
          await output.end(ref);
          return;
        }
      }
      // Interactive manifest jobs: dlt's launcher, with the interpreter the run ends up with.
      if (launch && d.launch) {
        let how: ReturnType<typeof applyAppLauncher>;
        try {
          how = applyAppLauncher({
            launch,
            req: this.req,
            runDir: this.runDir,
            python: prepared.argv[0] ?? this.w.tools.python,
            profile: prepared.config.profile,
            runEnv: prepared.env,
            executor: this.w.deps.executor,
          });
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          capture.note(message);
          await output.end(ref);
          await this.status.fail('setup_error', message, null, []);
          return;
        }
        if ('fallback' in how) {
          capture.note(how.fallback);
          if (prepared.dependencies)
            useAppInterpreter(launch, prepared.argv[0] ?? this.w.tools.python, prepared.env);
        } else launch.notes = how.notes;
      } else if (launch && prepared.dependencies)
        // An app by file runs in the environment of the deployment's dependencies too.
        useAppInterpreter(launch, prepared.argv[0] ?? this.w.tools.python, prepared.env);
      for (const line of launch?.notes ?? []) capture.note(line);
      // Manifest batch jobs: dlt's launcher contract, with the interpreter the run ends up with.
      let launcherJob: string | undefined;
      if (!launch && d.launch) {
        const cmd = launcherCommand(
          prepared.argv[0] ?? this.w.tools.python,
          this.req,
          prepared.config.profile,
        );
        if ('fallback' in cmd) capture.note(cmd.fallback);
        else {
          prepared.argv = cmd.argv;
          Object.assign(prepared.env, cmd.env);
          launcherJob = d.launch.jobRef;
          capture.note(
            `launcher ${d.launch.launcher} for ${d.launch.jobRef} (trigger ${cmd.env.RUNTIME__TRIGGER})`,
          );
        }
      }
      if (!launch) {
        const dsn = this.w.beacon.open(this.runId, {
          mask: (text) => capture.mask(text),
          warn: (line) => capture.note(line),
          report: (r) =>
            this.status.stored(
              r.kind === 'trace'
                ? { type: 'ReportTrace', trace: r.trace }
                : { type: 'ReportState', state: r.state },
              `beacon:${++this.beaconReports}`,
            ),
        });
        if (dsn) prepared.env.RUNTIME__DLTHUB_DSN = dsn;
      }
      const argv = launch?.argv ?? prepared.argv;
      let proc: RunProcess;
      try {
        proc = spawnRunProcess(
          this.w.deps.executor,
          {
            argv,
            env: launch?.env ?? prepared.env,
            cwd: this.runDir,
            workspaceId: this.ws,
            writable: launch?.writable ?? prepared.writable,
            readable,
            ...(launch
              ? {
                  network: launch.network,
                  ...(this.w.interactive.memoryBytes > 0
                    ? { memoryBytes: this.w.interactive.memoryBytes }
                    : {}),
                }
              : {}),
          },
          this.metaFile,
          meta,
          () => this.capture,
        );
      } catch (err) {
        await output.end(ref);
        await this.status.fail('spawn_error', err instanceof Error ? err.message : String(err), null, []);
        return;
      }
      this.proc = proc;
      const spawnedAt = (this.status.spawnedAt = Date.now());
      runStartLatency.observe(secondsSince(this.req.requestedAt.getTime(), spawnedAt));
      this.closed = proc.closed;
      this.w.logger.debug(
        `run ${this.runId}: spawned pid ${proc.pid} ${spawnedAt - this.req.requestedAt.getTime()} ms after the request (setup ${spawnedAt - startedSetup} ms)`,
      );
      // An app lives until it is idle: only a timeout its job sets caps it.
      const timeoutSeconds = d.timeoutSeconds ?? this.w.opts.runTimeoutSeconds;
      if (!launch || d.timeoutSeconds !== null)
        this.timeoutTimer = setTimeout(() => this.end('timeout'), timeoutSeconds * 1000);
      if (this.endReason) void this.terminate();

      // The process's end, concurrently with the `starting` hold below: once its process group is
      // gone, what its exit hooks reported is read, its files (secrets) are removed and its slot is
      // free for the next run.
      let reports: RunReports | undefined;
      let result: RunResult | undefined;
      const ended = (async (): Promise<ProcessExit> => {
        const exit = await proc.exited;
        clearTimeout(this.timeoutTimer);
        // Its endpoint closes before anything records the end: no gateway reaches a dead address.
        await this.app?.close();
        await reapRunProcess(
          proc,
          this.terminating,
          (line) => capture.note(line),
          (line) => this.w.logger.warn(`run ${this.runId}: ${line}`),
        );
        // Its processes are gone: the reports they sent are stored before the run's end is.
        await this.w.beacon.close(this.runId);
        reports = readRunReports(exitHookDirOf(this.runDir));
        if (launcherJob)
          result = readRunResult(
            exitHookDirOf(this.runDir),
            launcherJob,
            (text) => capture.mask(text),
            prepared.config.secretValues,
            (why) => capture.note(why),
          );
        rmSync(this.runDir, { recursive: true, force: true });
        this.processesGone();
        // The last output may still be in the pipes.
        await Promise.race([this.closed, sleep(2_000)]);
        capture.finish();
        if (capture.droppedLines > 0)
          capture.note(`${capture.droppedLines} line(s) past the log limit were dropped`);
        await output.end(ref);
        return exit;
      })();

      if (launch) await this.serveApp(launch, proc, argv, spawnedAt);
      else {
        await this.holdStarting();
        if (!this.endReason) {
          await this.status.cmd(
            {
              type: 'MarkRunning',
              pid: proc.pid,
              command: argv.join(' '),
              startedAt: new Date(spawnedAt).toISOString(),
            },
            'running',
          );
        }
      }
      const exit = await ended;
      if (this.appFailure !== undefined && (this.endReason === undefined || this.endReason === 'startup')) {
        await this.status.fail('app_startup', this.appFailure, exit, capture.stderrTail());
        return;
      }
      await this.status.finish({
        exit,
        endReason: this.endReason,
        stderrTail: capture.stderrTail(),
        timeoutSeconds,
        pid: proc.pid,
        result: () => result,
        collectPipelines: launch
          ? undefined
          : () =>
              collectRunPipelines({
                reports,
                executor: this.w.deps.executor,
                python: this.w.tools.python,
                toolPaths: this.w.tools.toolPaths,
                workspaceId: this.ws,
                runDir: this.runDir,
                prepared,
                since: spawnedAt,
              }),
      });
    } finally {
      await this.w.beacon.close(this.runId);
      this.releaseEnvironment?.();
      clearTimeout(this.timeoutTimer);
      this.dispose();
      rmSync(this.runDir, { recursive: true, force: true });
      rmSync(this.metaFile, { force: true });
      await this.w.deps.leases.release(this.runId).catch(() => undefined);
    }
  }

  /**
   * An interactive run: opens the app's endpoint, waits until the app answers HTTP (then the run is
   * `running`, with its address in RunAppReady) and watches it for idleness. An app that exits or
   * does not answer in time leaves `appFailure` set (the run fails with `app_startup`).
   */
  private async serveApp(
    launch: AppLaunch,
    proc: RunProcess,
    argv: string[],
    spawnedAt: number,
  ): Promise<void> {
    const o = this.w.interactive;
    const session = new AppSession(
      launch.type,
      launch.target,
      launch.basePath,
      this.w.appKey(this.runId),
      o,
      launch.servesBasePath,
    );
    this.app = session;
    const r = await session.start(proc, () => this.endReason !== undefined);
    if (!r.ready) {
      if (r.why === 'ended') return;
      this.appFailure =
        r.why === 'exited' && launch.exitHint ? `${r.message} (${launch.exitHint})` : r.message;
      if (r.why !== 'exited') this.end('startup');
      return;
    }
    await this.holdStarting();
    if (this.endReason) return;
    await this.status.cmd(
      {
        type: 'MarkRunning',
        pid: proc.pid,
        command: argv.join(' '),
        startedAt: new Date(spawnedAt).toISOString(),
        app: {
          runId: this.runId,
          jobId: this.req.jobId,
          appType: launch.type,
          address: { host: o.advertiseHost, port: r.port },
          basePath: launch.basePath,
          readyAt: r.readyAt.toISOString(),
          idleTimeoutSeconds: Math.max(1, Math.round(o.idleSeconds)),
        },
      },
      'running',
    );
    this.capture?.note(
      `the app answers (${r.readyAt.getTime() - spawnedAt} ms after the spawn): endpoint ${o.advertiseHost}:${r.port}${launch.basePath}/; it stops after ${o.idleSeconds} s without an open connection`,
    );
    session.endpoint.touch();
    session.watchIdle(() => this.end('idle'));
  }

  /**
   * Installs (or reuses) the deployment's environment, as the run's `setup` phase: uv's output in
   * the run's log (`[setup]` lines), a RunSetUp event in the timeline. Points the run at the
   * environment's interpreter, read-only. False: the run ended (failed, or cancelled meanwhile).
   */
  private async setUpDependencies(
    prepared: PreparedRun,
    capture: OutputCapture,
    readable: string[],
  ): Promise<boolean> {
    const decl = prepared.dependencies!;
    const envs = this.w.environments;
    const log = (line: string) => capture.write('stderr', Buffer.from(`[setup] ${line}\n`));
    if (!envs) {
      const message = `the deployment declares dependencies (${decl.source}) but this worker has no uv (set RUNWAY_UV, or run npm start's setup)`;
      capture.note(message);
      await this.status.fail('setup_error', message, null, []);
      return false;
    }
    log(`dependencies declared in ${decl.source}`);
    let r;
    try {
      r = await envs.ensure(this.ws, this.runId, decl, log);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log(message);
      await this.status.fail('setup_error', `installing the dependencies failed: ${message}`, null, []);
      return false;
    }
    await this.status.cmd(
      {
        type: 'RecordSetup',
        source: decl.source,
        environment: r.key,
        ok: r.ok,
        cacheHit: r.ok && r.cacheHit,
        durationMs: r.durationMs,
      },
      'setup',
    );
    if (!r.ok) {
      log(`failed after ${r.durationMs} ms`);
      await this.status.fail(
        'setup_error',
        `installing the dependencies declared in ${decl.source} failed: ${r.message}`,
        null,
        r.tail,
      );
      return false;
    }
    this.releaseEnvironment = r.release;
    log(
      r.cacheHit
        ? `cache hit: environment ${r.key.slice(0, 12)} reused, nothing installed (${r.durationMs} ms)`
        : `installed environment ${r.key.slice(0, 12)} in ${r.durationMs} ms`,
    );
    if (this.endReason === 'cancel') {
      await this.status.confirmCancelled(null, 'cancelled during setup');
      return false;
    }
    if (this.endReason === 'shutdown') {
      await this.status.fail('worker_lost', 'the worker shut down during setup', null, []);
      return false;
    }
    prepared.argv[0] = r.python;
    prepared.env.VIRTUAL_ENV = r.envDir;
    prepared.env.PATH = `${join(r.envDir, 'bin')}:${prepared.env.PATH ?? '/usr/bin:/bin'}`;
    readable.push(r.envDir);
    return true;
  }

  /** Keeps `starting` visible for a client polling every 2 s; the process runs meanwhile. */
  private async holdStarting(): Promise<void> {
    const holdUntil = this.req.requestedAt.getTime() + (this.w.opts.startingHoldMs ?? 2_500);
    if (this.endReason || Date.now() >= holdUntil) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, holdUntil - Date.now());
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = undefined;
  }
}
