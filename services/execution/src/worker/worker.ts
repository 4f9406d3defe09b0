import { Logger } from '@nestjs/common';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { EventStore } from '#libs/eventstore';
import type { NatsConnection } from '#libs/nats';
import type { RunExecutor } from '../executor/index.js';
import { RunAggregates } from '../run/run.handler.js';
import type { RunLeases } from './leases.js';
import type { RunMaterializer } from './materializer.js';
import type { RunOutputSink } from './output.js';
import { RunBeacon } from './beacon.js';
import { RunClaimer } from './run-claimer.js';
import { DependencyEnvironments } from './dependencies.js';
import { PASS_ENV, resolveTools, type RunTools } from './run-environment.js';
import { cleanupOrphans } from './run-process.js';
import type { RunSupervisor } from './run-supervisor.js';
import type { WorkspaceSlots } from './workspace-slots.js';
import { DEFAULT_INTERACTIVE, type InteractiveOptions } from './interactive/app-session.js';

export { resolvePython } from './run-environment.js';

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
  /**
   * uv, which installs a deployment's declared dependencies (docs/dependencies.md): its path
   * (RUNWAY_UV), false to never use it; default: the one setup installs into .tools/, else uv on PATH.
   */
  uv?: string | false;
  /** Interactive apps: idle stop, startup time, limits, endpoint address (default DEFAULT_INTERACTIVE). */
  interactive?: Partial<InteractiveOptions>;
  /** The package index uv installs from (RUNWAY_PIP_INDEX_URL, else UV_INDEX_URL; default PyPI). */
  indexUrl?: string;
  /** Dependency environments kept on this host (default 20) and their bytes (0 = no cap; default 20 GiB). */
  maxEnvironments?: number;
  maxEnvironmentBytes?: number;
  /** The install step's network: the index only (default) or the host's (RUNWAY_DEPS_NETWORK). */
  depsNetwork?: 'index' | 'host';
  /** More hosts it may reach (RUNWAY_DEPS_ALLOWED_HOSTS). */
  depsAllowedHosts?: readonly string[];
}

export interface WorkerDeps {
  nats: NatsConnection;
  store: EventStore;
  leases: RunLeases;
  materializer: RunMaterializer;
  /** Where run output lines go (the LOGS stream: JetStreamLogSink). */
  output: RunOutputSink;
  /** Where run processes execute (the bubblewrap sandbox, or plain processes with RUNWAY_SANDBOX=off). */
  executor: RunExecutor;
  /** At most `limit` runs in progress per workspace, across workers (absent: no limit). */
  workspaceQuota?: { slots: WorkspaceSlots; limit: number };
  /** At most `limit` interactive apps in progress per workspace, across workers (absent: no limit). */
  appQuota?: { slots: WorkspaceSlots; limit: number };
  /**
   * The key a gateway shows an app's endpoint (interactiveAppKey of the master key). Absent: a
   * random key of this worker (no gateway can reach its apps: tests of the worker alone).
   */
  appKey?: (runId: string) => string;
  /**
   * The token of a batch run's beacon DSN (runBeaconToken of the master key). Absent: derived from a
   * random key of this worker.
   */
  beaconToken?: (runId: string) => string;
}

/**
 * A worker: claims requested runs while it has free slots (run-claimer.ts) and supervises each
 * (run-supervisor.ts: directory and environment, process, lease, timeout, cancel, final status).
 */
export class Worker {
  readonly id: string;
  readonly host = hostname();
  readonly commands: RunAggregates;
  readonly output: RunOutputSink;
  readonly logger: Logger;
  /** The interpreter, uv and what run processes may read of them; resolved at start. */
  /** Interactive app options in force (the defaults, overridden by the options given). */
  readonly interactive: InteractiveOptions;
  /** The key of an app's endpoint (x-runway-app-key). */
  readonly appKey: (runId: string) => string;
  /** Where batch runs report traces and states (RUNTIME__DLTHUB_DSN, docs/runs-telemetry.md). */
  readonly beacon: RunBeacon;
  tools: RunTools = { python: '', pythonVersion: '', uv: undefined, toolPaths: [] };
  /** The deployments' dependency environments (absent without uv: a run declaring some fails in setup). */
  environments: DependencyEnvironments | undefined;
  private readonly active = new Map<string, RunSupervisor>();
  private readonly claimer: RunClaimer;
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly deps: WorkerDeps,
    readonly opts: WorkerOptions,
  ) {
    this.id = opts.workerId ?? randomUUID();
    this.logger = new Logger(`worker ${this.id.slice(0, 8)}`);
    this.commands = new RunAggregates(deps.store);
    this.output = deps.output;
    this.claimer = new RunClaimer(this, this.active);
    const apps = { ...DEFAULT_INTERACTIVE, ...opts.interactive };
    // Endpoints on every interface and no advertised host: gateways reach this machine by its name.
    if (['0.0.0.0', '::', '[::]'].includes(apps.advertiseHost)) apps.advertiseHost = hostname();
    this.interactive = apps;
    const own = randomBytes(32);
    this.appKey =
      deps.appKey ??
      ((runId) => createHmac('sha256', own).update(`runway interactive app v1:${runId}`).digest('hex'));
    this.beacon = new RunBeacon(
      deps.beaconToken ??
        ((runId) => createHmac('sha256', own).update(`runway run beacon v1:${runId}`).digest('hex')),
    );
  }

  get consumerName(): string {
    return this.claimer.consumerName;
  }

  /** Runs in progress in this worker. */
  get running(): readonly string[] {
    return [...this.active.keys()];
  }

  get workDir(): string {
    return join(this.opts.dataDir, 'work');
  }

  async start(): Promise<void> {
    this.tools = resolveTools(this.opts.python, this.opts.uv);
    if (this.tools.uv) {
      const baseEnv: Record<string, string> = {};
      for (const k of PASS_ENV) {
        const v = process.env[k];
        if (v !== undefined) baseEnv[k] = v;
      }
      this.environments = new DependencyEnvironments(
        {
          dataDir: this.opts.dataDir,
          uv: this.tools.uv,
          python: this.tools.python,
          toolPaths: this.tools.toolPaths,
          executor: this.deps.executor,
          baseEnv,
          indexUrl: this.opts.indexUrl,
          maxEnvironments: this.opts.maxEnvironments ?? 20,
          maxBytes: this.opts.maxEnvironmentBytes ?? 20 * 1024 ** 3,
          buildTimeoutMs: this.opts.runTimeoutSeconds * 1000,
          network: this.opts.depsNetwork ?? 'index',
          extraHosts: this.opts.depsAllowedHosts ?? [],
        },
        this.tools.pythonVersion,
      );
      // Unfinished builds a dead worker left, and anything past the caps.
      this.environments.collectGarbage((line) => this.logger.log(line));
    }
    mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    await this.beacon.start();
    await cleanupOrphans({
      workDir: this.workDir,
      workerId: this.id,
      leases: this.deps.leases,
      executor: this.deps.executor,
      logger: this.logger,
    });
    await this.claimer.start();
    this.refreshTimer = setInterval(() => void this.refreshLeases(), this.opts.leaseRefreshMs ?? 3_000);
    const { python, uv } = this.tools;
    this.logger.log(
      `started with ${this.opts.slots} slots, python ${python}${uv ? `, uv ${uv}` : ''}; runs: ${this.deps.executor.description}`,
    );
  }

  /** Stops pulling; runs in progress are ended (SIGTERM, then SIGKILL) and recorded as failed. */
  async stop(): Promise<void> {
    await this.claimer.stop();
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    await Promise.all([...this.active.values()].map((e) => e.shutdown()));
    await this.beacon.stop();
  }

  private async refreshLeases(): Promise<void> {
    await Promise.all(
      [...this.active.values()].map((e) =>
        e.heartbeat().catch((err: unknown) => this.logger.warn(`lease of ${e.runId}: ${String(err)}`)),
      ),
    );
  }
}
