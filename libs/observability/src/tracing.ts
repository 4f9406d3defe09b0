import {
  context,
  propagation,
  trace,
  SpanKind,
  SpanStatusCode,
  ROOT_CONTEXT,
  INVALID_SPAN_CONTEXT,
  type Context,
  type ContextManager,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { AsyncLocalStorage } from 'node:async_hooks';
import { z } from 'zod';

/** The W3C header that carries the trace context: in NATS headers and as an event commit header. */
export const TRACEPARENT = 'traceparent';

/** AsyncLocalStorage as OpenTelemetry's context manager: the active span follows awaits. */
class AsyncLocalContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.storage.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const run = (fn: (...a: unknown[]) => unknown) =>
      function (this: unknown, ...a: unknown[]) {
        return context.with(ctx, () => fn.apply(this, a));
      };
    return run(target as (...a: unknown[]) => unknown) as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

const switchSchema = z.enum(['on', 'off', 'true', 'false', '1', '0']).default('off');

/** RUNWAY_OTEL=on turns tracing on (the OTLP/HTTP endpoint: the standard OTEL_EXPORTER_OTLP_* variables). */
export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const r = switchSchema.safeParse(env.RUNWAY_OTEL || undefined);
  if (!r.success) throw new Error(`RUNWAY_OTEL must be on or off, not ${env.RUNWAY_OTEL}`);
  return ['on', 'true', '1'].includes(r.data);
}

let provider: TracerProvider | undefined;

/**
 * Starts tracing once per process when RUNWAY_OTEL=on: spans go in batches to the OTLP/HTTP
 * endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318, JSON). Off by default:
 * the API then hands out non-recording spans and injects nothing (no cost beyond a call).
 */
export function startTracing(serviceName = 'runway'): boolean {
  if (provider || !tracingEnabled()) return provider !== undefined;
  provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    spanProcessors: [
      new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), scheduledDelayMillis: 500 }),
    ],
  });
  context.setGlobalContextManager(new AsyncLocalContextManager());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return true;
}

/** Whether this process traces (startTracing turned it on). */
export function tracingActive(): boolean {
  return provider !== undefined;
}

/** Sends the spans still buffered and stops tracing (at the process's stop). */
export async function stopTracing(): Promise<void> {
  const p = provider;
  provider = undefined;
  if (!p) return;
  await p.shutdown().catch(() => undefined);
  trace.disable();
  propagation.disable();
  context.disable();
}

export async function flushTracing(): Promise<void> {
  await provider?.forceFlush();
}

const tracer = () => trace.getTracer('runway');

/**
 * Runs `fn` in a span named `name` of `service` (a child of the active span, or of `parent`
 * when given): ended when `fn` settles, its error recorded.
 */
export async function inSpan<T>(
  service: string,
  name: string,
  fn: (span: Span) => Promise<T>,
  opts: { parent?: Context; kind?: SpanKind; attributes?: Record<string, string | number> } = {},
): Promise<T> {
  if (!provider) return fn(trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  const span = tracer().startSpan(
    name,
    { kind: opts.kind ?? SpanKind.INTERNAL, attributes: { 'runway.service': service, ...opts.attributes } },
    opts.parent ?? context.active(),
  );
  try {
    return await context.with(trace.setSpan(opts.parent ?? context.active(), span), () => fn(span));
  } catch (err) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}

/** The trace id of the active span, when tracing is on and a span is active. */
export function activeTraceId(): string | undefined {
  if (!provider) return undefined;
  const id = trace.getSpanContext(context.active())?.traceId;
  return id && id !== '00000000000000000000000000000000' ? id : undefined;
}

/** A header set NATS or the event store writes: `set` (or `append`) one header. */
export interface HeaderSink {
  set(key: string, value: string): void;
}
/** What the trace context is read from: a NATS header set, a commit's headers. */
export interface HeaderSource {
  get(key: string): string | undefined;
}

const setter: TextMapSetter<HeaderSink> = { set: (c, k, v) => c.set(k, v) };
const getter: TextMapGetter<HeaderSource> = {
  get: (c, k) => c.get(k) || undefined,
  keys: () => [TRACEPARENT],
};

/** Writes the active trace context (traceparent) into `headers`; nothing when tracing is off. */
export function injectTraceContext(headers: HeaderSink): void {
  if (provider) propagation.inject(context.active(), headers, setter);
}

/** The trace context `headers` carry (traceparent), as a parent for `inSpan`. */
export function extractTraceContext(headers: HeaderSource | undefined): Context | undefined {
  if (!provider || !headers) return undefined;
  return propagation.extract(ROOT_CONTEXT, headers, getter);
}

export { SpanKind };
