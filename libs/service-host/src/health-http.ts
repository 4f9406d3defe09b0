import { createServer, type Server } from 'node:http';

/** The path a standalone service or worker answers on RUNWAY_HEALTH_PORT (Kubernetes probes, compose healthchecks). */
export const HEALTH_PATH = '/healthz';

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
 * 200 with the report when its status is `ok`, 503 otherwise; anything else is 404. It is opened
 * only once the process is ready, so "connection refused" means "not (yet) ready".
 */
export async function startHealthListener(
  port: number,
  host: string,
  report: () => HealthReport,
): Promise<HealthListener> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
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
