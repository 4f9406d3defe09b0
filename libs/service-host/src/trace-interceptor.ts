import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { NatsContext } from '@nestjs/microservices';
import { Observable } from 'rxjs';
import { extractTraceContext, inSpan, SpanKind, tracingActive } from '#libs/observability';

/**
 * A service's request/reply handler in a span whose parent is the caller's trace context (the
 * `traceparent` NATS header the gateway's `rpc` sets): the trace of a run request goes on from the
 * gateway into the service, and from there (the commit's `traceparent` header) to the worker.
 * Nothing is done when tracing is off.
 */
@Injectable()
export class TraceInterceptor implements NestInterceptor {
  constructor(private readonly service: string) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!tracingActive() || ctx.getType() !== 'rpc') return next.handle();
    const nats = ctx.switchToRpc().getContext<unknown>();
    const headers = nats instanceof NatsContext ? nats.getHeaders() : undefined;
    const parent = extractTraceContext(
      headers ? { get: (k: string) => (headers.has(k) ? headers.get(k) : undefined) } : undefined,
    );
    const subject = nats instanceof NatsContext ? nats.getSubject() : 'rpc';
    return new Observable<unknown>((subscriber) => {
      void inSpan(
        this.service,
        `${this.service} ${subject}`,
        () =>
          new Promise<void>((resolve) => {
            next.handle().subscribe({
              next: (v) => subscriber.next(v),
              error: (e: unknown) => {
                subscriber.error(e);
                resolve();
              },
              complete: () => {
                subscriber.complete();
                resolve();
              },
            });
          }),
        { kind: SpanKind.SERVER, ...(parent ? { parent } : {}) },
      );
    });
  }
}
