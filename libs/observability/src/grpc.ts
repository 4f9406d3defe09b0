import { grpcRequestDuration, grpcRequestErrorsTotal } from './metrics.js';
import { extractTraceContext, inSpan, SpanKind } from './tracing.js';

/** What a gRPC call's metadata offers (grpc-js Metadata): its values under a key. */
interface MetadataLike {
  get(key: string): unknown[];
}

/**
 * One unary gRPC call of the gateway: `span` runs it in a server span (parent: the caller's
 * `traceparent` metadata), `end(code)` records `runway_grpc_request_duration_seconds` and, for a
 * code other than OK (0), `runway_grpc_request_errors_total`.
 */
export function observeGrpcCall(method: string, metadata: MetadataLike) {
  const started = process.hrtime.bigint();
  let ended = false;
  return {
    span: (fn: () => Promise<void>) => {
      const parent = extractTraceContext({
        get: (k) => {
          const v = metadata.get(k)[0];
          return typeof v === 'string' ? v : undefined;
        },
      });
      return inSpan('gateway', `grpc ${method}`, fn, {
        kind: SpanKind.SERVER,
        ...(parent ? { parent } : {}),
      });
    },
    end: (code: number) => {
      if (ended) return;
      ended = true;
      const labels = { method, code: String(code) };
      grpcRequestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      if (code !== 0) grpcRequestErrorsTotal.inc(labels);
    },
  };
}
