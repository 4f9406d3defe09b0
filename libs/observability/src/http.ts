import type { NextFunction, Request, Response } from 'express';
import { httpRequestDuration, httpRequestErrorsTotal, metricsExposition } from './metrics.js';
import { withLogFields } from './logger.js';
import { extractTraceContext, inSpan, SpanKind } from './tracing.js';

/** The route a request matched (its pattern, not its path: bounded label values), or `unmatched`. */
function routeOf(req: Request): string {
  const route: unknown = req.route;
  if (route && typeof route === 'object' && 'path' in route && typeof route.path === 'string')
    return `${req.baseUrl}${route.path}`;
  return 'unmatched';
}

const header = (req: Request, name: string): string | undefined => {
  const v = req.headers[name];
  return typeof v === 'string' && v.length > 0 && v.length <= 200 ? v : undefined;
};

/**
 * Express middleware of the gateway: each request in a server span (its parent from the caller's
 * `traceparent`), its log lines with its correlation id (`x-correlation-id` when sent), and
 * `runway_http_request_duration_seconds` / `runway_http_request_errors_total` by method, route, status.
 */
export function httpObservability(service: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    const correlationId = header(req, 'x-correlation-id');
    const parent = extractTraceContext({ get: (k) => header(req, k) });
    void inSpan(
      service,
      `${req.method} ${req.path}`,
      (span) =>
        new Promise<void>((resolve) => {
          let done = false;
          const finish = () => {
            if (done) return;
            done = true;
            const route = routeOf(req);
            const labels = { method: req.method, route, status: String(res.statusCode) };
            httpRequestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
            if (res.statusCode >= 500) httpRequestErrorsTotal.inc(labels);
            span.updateName(`${req.method} ${route}`);
            span.setAttribute('http.response.status_code', res.statusCode);
            resolve();
          };
          res.once('finish', finish);
          res.once('close', finish);
          if (correlationId) withLogFields({ correlationId }, next);
          else next();
        }),
      { kind: SpanKind.SERVER, ...(parent ? { parent } : {}) },
    );
  };
}

/** GET /metrics as Express middleware (the gateway's HTTP port); other requests go on. */
export function metricsEndpoint(path = '/metrics') {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'GET' || req.path !== path) return next();
    metricsExposition()
      .then((m) => res.status(200).type(m.contentType).send(m.body))
      .catch((err: unknown) => res.status(500).type('text/plain').send(String(err)));
  };
}
