import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Logger, type INestApplicationContext } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, badRequest, toErrorBody } from '#libs/http';
import { observeGrpcCall } from '#libs/observability';
import type { AuthRule } from '../auth/authenticated.decorator.js';
import { Authenticator } from '../auth/authenticator.js';
import { WorkspaceAccess } from '../auth/workspace-access.js';
import { clean, logLineMessage } from './messages.js';
import { FOLLOW_AUTH, METHODS, Services, workspaceOf, type Caller, type Req } from './methods.js';

export function protoPath(): string {
  // Works from dist/services/gateway/src/grpc and from the source tree.
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const p = join(dir, 'libs', 'contracts', 'proto', 'runway.proto');
    if (existsSync(p)) return p;
  }
  throw new Error('libs/contracts/proto/runway.proto not found');
}

/** HTTP statuses of the application services' errors as gRPC codes (the one mapping). */
const STATUS: Record<number, grpc.status> = {
  400: grpc.status.INVALID_ARGUMENT,
  401: grpc.status.UNAUTHENTICATED,
  403: grpc.status.PERMISSION_DENIED,
  404: grpc.status.NOT_FOUND,
  409: grpc.status.ABORTED,
  413: grpc.status.RESOURCE_EXHAUSTED,
  422: grpc.status.INVALID_ARGUMENT,
  428: grpc.status.FAILED_PRECONDITION,
  429: grpc.status.RESOURCE_EXHAUSTED,
  503: grpc.status.UNAVAILABLE,
};

const logger = new Logger('grpc');

/**
 * A failed call as a gRPC status: the error as REST would answer it (`toErrorBody`: status,
 * detail, extra), its detail as the status details, the HTTP status and the extra as metadata.
 */
export function toServiceError(err: unknown): grpc.StatusObject {
  const body = toErrorBody(err);
  if (body.status_code >= 500 && body.status_code !== 503)
    logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  const md = new grpc.Metadata();
  md.set('http-status', String(body.status_code));
  if (body.extra && Object.keys(body.extra).length > 0) md.set('error-extra', JSON.stringify(body.extra));
  return {
    code: STATUS[body.status_code] ?? (body.status_code >= 500 ? grpc.status.INTERNAL : grpc.status.UNKNOWN),
    details: body.detail,
    metadata: md,
  };
}

const bearer = (md: grpc.Metadata): string | undefined => {
  const auth = md.get('authorization')[0];
  return typeof auth === 'string' ? auth.replace(/^Bearer\s+/i, '') || undefined : undefined;
};

/** Metadata key under which the interceptor hands the authenticated caller to the handler. */
const CALLER_KEY = 'runway-caller';

/**
 * Authentication before the request message is read: the server reads a call's message only when
 * its handler asks for it, after the metadata went through this interceptor. So a caller without
 * valid credentials never makes the server buffer a message, whatever the message size limit
 * (docs/quotas.md): Ping, the one public method, is answered without reading its (empty) request;
 * any other call gets UNAUTHENTICATED. The credential is checked in-process (no HTTP hop) and the
 * caller is handed to the handler through a one-time reference in the call's metadata (a value a
 * client sends under that key is replaced).
 */
function authenticateFirst(
  authenticator: Authenticator,
  callers: Map<string, Caller>,
): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, proceed) => {
            metadata.remove(CALLER_KEY);
            const token = bearer(metadata);
            const fail = (err: unknown) => call.sendStatus(toServiceError(err));
            if (!token) {
              if (!method.path.endsWith('/Ping'))
                return fail(new ApiError(401, 'authentication required: send authorization: Bearer <token>'));
              call.sendMetadata(new grpc.Metadata());
              call.sendMessage({ message: 'pong', service: 'api' }, () =>
                call.sendStatus({ code: grpc.status.OK, details: 'OK' }),
              );
              return;
            }
            authenticator.authenticate(token).then((principal) => {
              const ref = randomUUID();
              callers.set(ref, { principal, token });
              // A call that never reaches its handler (a message over the size limit) lets go of it.
              setTimeout(() => callers.delete(ref), 60_000).unref();
              metadata.set(CALLER_KEY, ref);
              proceed(metadata);
            }, fail);
          },
        }),
    });
}

export interface GrpcServerHandle {
  port: number;
  /** Live FollowRunLogs streams. */
  follows: () => number;
  stop: () => Promise<void>;
}

/** The `runway.v1` package of runway.proto, loaded as servers and clients use it (oneofs as fields). */
export function loadRunwayPackage(): {
  runway: {
    v1: {
      Runway: (new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client) & {
        service: grpc.ServiceDefinition;
      };
    };
  };
} {
  const def = protoLoader.loadSync(protoPath(), {
    keepCase: true,
    longs: Number,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def) as never;
}

/**
 * The gRPC face of the gateway: each method calls the same application service as its REST route,
 * in-process, after the authorization it declares (methods.ts); errors map once from the
 * services' typed errors.
 */
export async function startGrpcServer(opts: {
  port: number;
  host: string;
  /** The gateway's Nest application: its application services answer the calls. */
  app: INestApplicationContext;
  /** Largest request message of an authenticated call (default 110 MiB); others are never read. */
  maxMessageBytes?: number;
}): Promise<GrpcServerHandle> {
  const pkg = loadRunwayPackage();
  const services = new Services(opts.app);
  const access = opts.app.get(WorkspaceAccess);
  const callers = new Map<string, Caller>();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes ?? 110 * 1024 * 1024,
    interceptors: [authenticateFirst(opts.app.get(Authenticator), callers)],
  });

  /** The caller of a call (handed over by the interceptor), after the method's authorization. */
  const authorize = async (
    call: { metadata: grpc.Metadata; request: Req },
    rule: AuthRule | 'public',
  ): Promise<Caller | undefined> => {
    const ref = call.metadata.get(CALLER_KEY)[0];
    const caller = typeof ref === 'string' ? callers.get(ref) : undefined;
    if (typeof ref === 'string') callers.delete(ref);
    if (rule === 'public') return caller;
    if (!caller) throw new ApiError(401, 'authentication required: send authorization: Bearer <token>');
    if (rule.workspace && !workspaceOf(call.request)) throw badRequest('workspace_id is required');
    const user = call.request.user;
    await access.authorize(caller.principal, rule, {
      workspaceId: workspaceOf(call.request),
      user: typeof user === 'string' ? user : undefined,
    });
    return caller;
  };

  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(METHODS)) {
    impl[name] = (call: grpc.ServerUnaryCall<Req, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const done = observeGrpcCall(name, call.metadata);
      void done.span(() =>
        authorize(call, method.auth)
          .then((caller) => method.handle(services, call.request, caller))
          .then((res) => {
            done.end(grpc.status.OK);
            callback(null, clean(res));
          })
          .catch((err: unknown) => {
            const status = toServiceError(err);
            done.end(status.code);
            callback(status);
          }),
      );
    };
  }
  const follows = new Set<() => void>();
  impl.FollowRunLogs = (call: grpc.ServerWritableStream<Req, unknown>) =>
    followRunLogs(call, services, () => authorize(call, FOLLOW_AUTH), follows);
  server.addService(pkg.runway.v1.Runway.service, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    follows: () => follows.size,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const end of [...follows]) end();
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 5000);
        t.unref();
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}

/**
 * FollowRunLogs, natively: the run's lines from the LOGS stream through the logs application
 * service (as the SSE route), each sent as a LogEvent, then one `end` after the seal. Backpressure
 * flows through (the next lines are read only once the client took the previous ones); a client
 * cancel or a server shutdown (UNAVAILABLE: resume with from_seq elsewhere) ends the follow.
 */
function followRunLogs(
  call: grpc.ServerWritableStream<Req, unknown>,
  services: Services,
  authorize: () => Promise<Caller | undefined>,
  active: Set<() => void>,
): void {
  const ac = new AbortController();
  const shutdown = () => {
    if (ac.signal.aborted) return;
    ac.abort();
    call.emit('error', {
      code: grpc.status.UNAVAILABLE,
      details: 'the server is shutting down; resume with from_seq',
    });
  };
  active.add(shutdown);
  ac.signal.addEventListener('abort', () => active.delete(shutdown), { once: true });
  call.on('cancelled', () => ac.abort());
  call.on('close', () => ac.abort());
  const send = (msg: unknown) =>
    call.write(msg)
      ? Promise.resolve()
      : new Promise<void>((r) => {
          call.once('drain', () => r());
          ac.signal.addEventListener('abort', () => r(), { once: true });
        });
  const fail = (err: unknown) => {
    if (ac.signal.aborted) return;
    ac.abort();
    call.emit('error', toServiceError(err));
  };
  const run = async () => {
    const r = call.request;
    const from = Number(r.from_seq ?? 0);
    if (!Number.isSafeInteger(from) || from < 0) throw badRequest('from_seq must be a non-negative integer');
    const caller = await authorize();
    const runId = typeof r.run_id === 'string' ? r.run_id : '';
    if (!runId) throw badRequest('run_id is required');
    if (!caller) throw new ApiError(401, 'authentication required');
    const ws = workspaceOf(r);
    const found = await services.runs.require(ws, runId);
    for await (const e of services.logs.follow(caller.principal, ws, found, Math.max(1, from), ac.signal)) {
      if (e.type === 'lines') {
        for (const l of e.lines) await send(logLineMessage(l));
      } else if (e.type === 'end') {
        await send({ end: { line_count: e.lineCount, sealed: e.sealed } });
        ac.abort();
        call.end();
      } else if (e.type === 'refused') fail(new ApiError(e.status, e.detail));
      else fail(new ApiError(503, `following the log failed: ${e.detail}`));
    }
  };
  run().then(() => active.delete(shutdown), fail);
}
