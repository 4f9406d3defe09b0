import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The process's one Prometheus registry: every metric Runway exposes is defined here, once, with
 * the `runway_` prefix and its unit (`_seconds`, `_total`). In `npm start`'s all-in-one process the
 * gateway's /metrics covers every hosted service; a service or worker on its own answers /metrics
 * on its health port (RUNWAY_HEALTH_PORT or RUNWAY_METRICS_PORT).
 */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: 'runway_' });

/** Latency buckets from 5 ms to 60 s (requests, run start, scheduler fire lag). */
const LATENCY = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const runsEndedTotal = new Counter({
  name: 'runway_runs_ended_total',
  help: 'Runs that reached a final status, by status and reason',
  labelNames: ['status', 'reason'] as const,
  registers: [metricsRegistry],
});

export const runStartLatency = new Histogram({
  name: 'runway_run_start_latency_seconds',
  help: 'From the RunRequested commit being stored to the run process spawned (worker)',
  buckets: LATENCY,
  registers: [metricsRegistry],
});

export const schedulerFireLag = new Histogram({
  name: 'runway_scheduler_fire_lag_seconds',
  help: 'From a schedule fire time to its RunRequested commit stored (scheduler)',
  buckets: LATENCY,
  registers: [metricsRegistry],
});

export const logFollowLatency = new Histogram({
  name: 'runway_log_follow_latency_seconds',
  help: 'From a log line read by the worker to a live follower reading it',
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [metricsRegistry],
});

export const httpRequestDuration = new Histogram({
  name: 'runway_http_request_duration_seconds',
  help: 'HTTP requests answered by the gateway, by method, route and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: LATENCY,
  registers: [metricsRegistry],
});

export const httpRequestErrorsTotal = new Counter({
  name: 'runway_http_request_errors_total',
  help: 'HTTP requests answered with a status >= 500, by method, route and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [metricsRegistry],
});

export const grpcRequestDuration = new Histogram({
  name: 'runway_grpc_request_duration_seconds',
  help: 'gRPC calls answered by the gateway, by method and code',
  labelNames: ['method', 'code'] as const,
  buckets: LATENCY,
  registers: [metricsRegistry],
});

export const grpcRequestErrorsTotal = new Counter({
  name: 'runway_grpc_request_errors_total',
  help: 'gRPC calls answered with a code other than OK, by method and code',
  labelNames: ['method', 'code'] as const,
  registers: [metricsRegistry],
});

/** A value read when Prometheus scrapes (asynchronous: a consumer's or a stream's info). */
type Source = () => Promise<number>;

const queueSources = new Map<string, Source>();
const lagSources = new Map<string, Source>();

async function collectFrom(sources: Map<string, Source>, set: (name: string, value: number) => void) {
  await Promise.all(
    [...sources].map(async ([name, read]) => {
      try {
        set(name, await read());
      } catch {
        // a source that cannot answer now (NATS reconnecting) is left out of this scrape
      }
    }),
  );
}

export const queueDepth = new Gauge({
  name: 'runway_queue_depth',
  help: 'Run requests waiting for a worker (the run-claim consumer num_pending)',
  labelNames: ['consumer'] as const,
  registers: [metricsRegistry],
  async collect() {
    this.reset();
    await collectFrom(queueSources, (consumer, v) => this.set({ consumer }, v));
  },
});

export const projectionLag = new Gauge({
  name: 'runway_projection_lag',
  help: 'Commits of the event stream not yet folded by a projection (stream last seq - checkpoint)',
  labelNames: ['projection'] as const,
  registers: [metricsRegistry],
  async collect() {
    this.reset();
    await collectFrom(lagSources, (projection, v) => this.set({ projection }, v));
  },
});

/** Registers what `runway_queue_depth{consumer}` reads; returns its removal. */
export function observeQueueDepth(consumer: string, read: Source): () => void {
  queueSources.set(consumer, read);
  return () => {
    if (queueSources.get(consumer) === read) queueSources.delete(consumer);
  };
}

/** Registers what `runway_projection_lag{projection}` reads; returns its removal. */
export function observeProjectionLag(projection: string, read: Source): () => void {
  lagSources.set(projection, read);
  return () => {
    if (lagSources.get(projection) === read) lagSources.delete(projection);
  };
}

/** Seconds since `from` (ms since the epoch), never negative (clocks of two hosts). */
export function secondsSince(fromMs: number, nowMs = Date.now()): number {
  return Math.max(0, (nowMs - fromMs) / 1000);
}

/** The text exposition Prometheus scrapes, with its content type. */
export async function metricsExposition(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}

/** RUNWAY_METRICS_PORT: a port of its own for /metrics (and /healthz, /readyz) of a service or worker process. */
export function metricsPort(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.RUNWAY_METRICS_PORT;
  if (raw === undefined || raw === '') return undefined;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`RUNWAY_METRICS_PORT must be a port number, not ${raw}`);
  return port;
}
