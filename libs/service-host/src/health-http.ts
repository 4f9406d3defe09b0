import { createServer, type Server } from 'node:http';
import { metricsExposition, metricsPort, readiness } from '#libs/observability';

/** The path a standalone service or worker answers on RUNWAY_HEALTH_PORT (Kubernetes probes, compose healthchecks). */
export const HEALTH_PATH = '/healthz';
/** Readiness on the same port: 200 only when the process can take work, 503 with the reasons otherwise. */
export const READY_PATH = '/readyz';
/** Prometheus metrics of the process (docs/observability.md). */
export const METRICS_PATH = '/metrics';

export interface HealthReport {
  status: 'ok' | 'down';
  [key: string]: unknown;
}

export interface HealthListener {
  port: number;
  close: () => Promise<void>;
}

/**
 * A minimal HTTP listener for a process that has no HTTP server of its own: GET /healthz answers
 * 200 with the report when its status is `ok`, 503 otherwise; GET /readyz the process's readiness
 * (libs/observability); GET /metrics its Prometheus metrics; anything else is 404. It is opened
 * only once the process is ready, so "connection refused" means "not (yet) ready".
 */
export async function startHealthListener(
  port: number,
  host: string,
  report: () => HealthReport,
): Promise<HealthListener> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === METRICS_PATH) {
      metricsExposition()
        .then((m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.body))
        .catch((err: unknown) => res.writeHead(500).end(String(err)));
      return;
    }
    if (req.method === 'GET' && path === READY_PATH) {
      void readiness
        .report()
        .then((r) =>
          res
            .writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' })
            .end(JSON.stringify({ status: r.ready ? 'ready' : 'not ready', reasons: r.reasons })),
        );
      return;
    }
    if (req.method !== 'GET' || path !== HEALTH_PATH) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    const body = report();
    res
      .writeHead(body.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' })
      .end(JSON.stringify(body));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The probe listeners of a process without an HTTP server of its own: RUNWAY_HEALTH_PORT and, when
 * set to another port, RUNWAY_METRICS_PORT; each answers /healthz, /readyz and /metrics.
 */
export async function startProbeListeners(
  healthPort: number | undefined,
  host: string,
  report: () => HealthReport,
): Promise<HealthListener[]> {
  const ports = [healthPort, metricsPort()].filter((p): p is number => p !== undefined);
  const listeners: HealthListener[] = [];
  for (const port of new Set(ports)) listeners.push(await startHealthListener(port, host, report));
  return listeners;
}
