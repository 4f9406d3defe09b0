import type { RunwayConfig } from '#libs/config';
import type { AppType } from '#libs/contracts';
import { sleep, type RunProcess } from '../../executor/index.js';
import { AppEndpoint, probeApp, type AppTarget } from './app-endpoint.js';

/** What a worker needs to run interactive apps: config `worker.interactive`. */
export type InteractiveOptions = RunwayConfig['worker']['interactive'];

export const DEFAULT_INTERACTIVE: InteractiveOptions = {
  idleSeconds: 300,
  startupSeconds: 60,
  perWorkspace: 5,
  perWorker: 8,
  queueSeconds: 30,
  memoryBytes: 0,
  bindHost: '127.0.0.1',
  advertiseHost: '127.0.0.1',
};

export type ReadyOutcome =
  | { ready: true; port: number; readyAt: Date }
  | { ready: false; why: 'exited' | 'timeout' | 'ended' | 'endpoint'; message: string };

/**
 * One interactive app of a run: its worker endpoint, the wait until it answers, and the idle watch.
 */
export class AppSession {
  readonly endpoint: AppEndpoint;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly type: AppType,
    readonly target: AppTarget,
    readonly basePath: string,
    key: string,
    private readonly opts: InteractiveOptions,
    /** The app serves under `basePath` itself (default: marimo does, a plain app serves at its root). */
    private readonly servesBasePath = type === 'marimo',
  ) {
    this.endpoint = new AppEndpoint({
      target,
      key,
      basePath,
      stripBasePath: !servesBasePath,
      bindHost: opts.bindHost,
    });
  }

  /**
   * Opens the endpoint, then polls the app (HTTP, not its logs) until it answers, its process
   * exits, `ended()` says the run is being ended, or the startup time is over.
   */
  async start(proc: RunProcess, ended: () => boolean): Promise<ReadyOutcome> {
    let port: number;
    try {
      port = await this.endpoint.listen();
    } catch (err) {
      return {
        ready: false,
        why: 'endpoint',
        message: `the worker could not open an endpoint for the app on ${this.opts.bindHost}: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
    let exited = false;
    void proc.exited.then(() => (exited = true));
    const until = Date.now() + this.opts.startupSeconds * 1000;
    const path = this.servesBasePath ? `${this.basePath}/` : '/';
    let delay = 100;
    for (;;) {
      if (ended())
        return { ready: false, why: 'ended', message: 'the run was ended before its app answered' };
      if (exited) {
        const e = await proc.exited;
        return {
          ready: false,
          why: 'exited',
          message: `the app exited (${e.signal ? `signal ${e.signal}` : `code ${e.code}`}) before it answered HTTP: see its log`,
        };
      }
      if (await probeApp(this.target, path)) return { ready: true, port, readyAt: new Date() };
      if (Date.now() >= until)
        return {
          ready: false,
          why: 'timeout',
          message: `the app did not answer HTTP on its port within ${this.opts.startupSeconds} s (RUNWAY_INTERACTIVE_STARTUP_SECONDS)`,
        };
      await Promise.race([sleep(delay), proc.exited]);
      delay = Math.min(delay * 1.5, 500);
    }
  }

  /** Calls `onIdle` once the app has had no request in flight and no open WebSocket for the idle time. */
  watchIdle(onIdle: () => void): void {
    const idleMs = this.opts.idleSeconds * 1000;
    const every = Math.max(100, Math.min(1_000, idleMs / 4));
    this.idleTimer = setInterval(() => {
      if (this.endpoint.idleForMs() >= idleMs) {
        this.stopWatching();
        onIdle();
      }
    }, every);
    this.idleTimer.unref();
  }

  stopWatching(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
  }

  async close(): Promise<void> {
    this.stopWatching();
    await this.endpoint.close();
  }
}
