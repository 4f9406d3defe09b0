import { Catch, type RpcExceptionFilter } from '@nestjs/common';
import { ClientProxy, NatsRecordBuilder, RpcException } from '@nestjs/microservices';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { injectTraceContext, inSpan, SpanKind, tracingActive } from '#libs/observability';
import { firstValueFrom, throwError, timeout, type Observable } from 'rxjs';
import { z } from 'zod';
import { ConcurrencyError, DomainError, EventSchemaError } from '#libs/eventstore';

/** The error a service sends back over NATS request/reply; the gateway maps it to HTTP. */
export const rpcErrorSchema = z.object({
  status: z.number().int(),
  detail: z.string(),
  extra: z.record(z.string(), z.unknown()).optional(),
});
export type RpcError = z.infer<typeof rpcErrorSchema>;

export function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcException) {
    const e = rpcErrorSchema.safeParse(err.getError());
    if (e.success) return e.data;
  }
  if (err instanceof DomainError)
    return { status: err.status, detail: err.message, extra: { code: err.code } };
  if (err instanceof ConcurrencyError)
    return { status: 409, detail: 'the resource was changed concurrently, retry the request' };
  if (err instanceof EventSchemaError) return { status: 400, detail: err.message };
  return { status: 500, detail: 'internal error' };
}

/**
 * A request payload that arrived over NATS, checked against its contract: the parsed value, or a
 * DomainError (400 at the gateway) naming each field that is wrong.
 */
export function parseRpcPayload<S extends z.ZodType>(
  schema: S,
  payload: unknown,
  what = 'request',
): z.infer<S> {
  const r = schema.safeParse(payload);
  if (!r.success)
    throw new DomainError(
      `invalid ${what}: ${r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ')}`,
    );
  return r.data;
}

/** Microservice-side filter: every error leaves as an RpcError payload. */
@Catch()
export class RpcErrorFilter implements RpcExceptionFilter<unknown> {
  catch(err: unknown): Observable<never> {
    const e = toRpcError(err);
    if (e.status >= 500) console.error(err);
    return throwError(() => e);
  }
}

export class RpcCallError extends Error {
  constructor(readonly error: RpcError) {
    super(error.detail);
  }
}

/** The request with the active trace context in its NATS headers (`traceparent`), when tracing is on. */
function withTraceHeaders(data: unknown): unknown {
  if (!tracingActive()) return data;
  const h = natsHeaders();
  injectTraceContext(h);
  return h.keys().length > 0 ? new NatsRecordBuilder(data).setHeaders(h).build() : data;
}

/** Gateway-side call: request/reply with a timeout; a service error comes back as RpcCallError. */
export async function rpc<T>(
  client: ClientProxy,
  pattern: string,
  data: unknown,
  schema: z.ZodType<T>,
  timeoutMs = 30_000,
): Promise<T> {
  let raw: unknown;
  try {
    // A client span around the request (its context is what the service's span continues).
    raw = await inSpan(
      'gateway',
      `nats request ${pattern}`,
      () => firstValueFrom(client.send<unknown>(pattern, withTraceHeaders(data)).pipe(timeout(timeoutMs))),
      { kind: SpanKind.CLIENT },
    );
  } catch (err) {
    const e = rpcErrorSchema.safeParse(err);
    if (e.success) throw new RpcCallError(e.data);
    if (err instanceof Error && err.name === 'TimeoutError')
      throw new RpcCallError({ status: 503, detail: `service did not answer ${pattern} in time` });
    if (err instanceof Error && /no subscribers|no responders|Empty response/i.test(err.message)) {
      throw new RpcCallError({ status: 503, detail: `no service answers ${pattern}` });
    }
    throw err;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    throw new RpcCallError({ status: 502, detail: `malformed reply to ${pattern}: ${parsed.error.message}` });
  return parsed.data;
}

/** Nest token of the gateway's NATS client to the services. */
export const SERVICES_CLIENT = 'RUNWAY_SERVICES_CLIENT';
