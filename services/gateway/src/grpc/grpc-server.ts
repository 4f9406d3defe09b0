import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClientError, isAbortError, RunwayClient } from '#libs/client';

export function protoPath(): string {
  // Works from dist/services/gateway/src/grpc and from the source tree.
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const p = join(dir, 'libs', 'contracts', 'proto', 'runway.proto');
    if (existsSync(p)) return p;
  }
  throw new Error('libs/contracts/proto/runway.proto not found');
}

const STATUS: Record<number, grpc.status> = {
  0: grpc.status.UNAVAILABLE,
  400: grpc.status.INVALID_ARGUMENT,
  401: grpc.status.UNAUTHENTICATED,
  403: grpc.status.PERMISSION_DENIED,
  404: grpc.status.NOT_FOUND,
  409: grpc.status.ABORTED,
  413: grpc.status.RESOURCE_EXHAUSTED,
  422: grpc.status.INVALID_ARGUMENT,
  428: grpc.status.FAILED_PRECONDITION,
  429: grpc.status.RESOURCE_EXHAUSTED,
};

const bearer = (md: grpc.Metadata): string | undefined => {
  const auth = md.get('authorization')[0];
  return typeof auth === 'string' ? auth.replace(/^Bearer\s+/i, '') || undefined : undefined;
};

/**
 * Authentication before the request message is read: the server reads a call's message only when
 * its handler asks for it, after the metadata went through this interceptor. So a caller without
 * valid credentials never makes the server buffer a message, whatever the message size limit
 * (docs/quotas.md): Ping, the one public method, is answered without reading its (empty) request;
 * any other call gets UNAUTHENTICATED. An authenticated call's message may be up to the limit.
 */
function authenticateFirst(restBase: string): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, proceed) => {
            const token = bearer(metadata);
            const fail = (err: unknown) => call.sendStatus(toServiceError(err));
            if (!token) {
              if (!method.path.endsWith('/Ping'))
                return fail(
                  new ClientError(401, 'authentication required: send authorization: Bearer <token>'),
                );
              new RunwayClient({ apiBase: restBase }).api('GET', '/v1/ping').then((pong) => {
                call.sendMetadata(new grpc.Metadata());
                call.sendMessage(clean(pong), () => call.sendStatus({ code: grpc.status.OK, details: 'OK' }));
              }, fail);
              return;
            }
            new RunwayClient({ apiBase: restBase, token }).me().then(() => proceed(metadata), fail);
          },
        }),
    });
}

type Req = Record<string, unknown>;
type Handler = (c: RunwayClient, req: Req) => Promise<unknown>;

const ws = (req: Req) => {
  const id = String(req.workspace_id ?? '');
  if (!id) throw new ClientError(400, 'workspace_id is required');
  return encodeURIComponent(id);
};
const page = (req: Req) => `limit=${Number(req.limit) || 100}&offset=${Number(req.offset) || 0}`;
const version = (req: Req) => encodeURIComponent(String(req.id_or_version || 'latest'));
const upload = (kind: 'deployments' | 'configurations') => (c: RunwayClient, req: Req) => {
  const form = new FormData();
  const bytes = req.package instanceof Uint8Array ? req.package : new Uint8Array();
  form.append('file', new Blob([bytes], { type: 'application/x-tar' }), `${kind}.tar.gz`);
  return c.api('POST', `/v1/workspaces/${ws(req)}/${kind}`, form);
};
/** A required path parameter; "/" inside (script names) kept as separators. */
const pathOf = (v: unknown, field: string) => {
  const s = String(v ?? '');
  if (!s) throw new ClientError(400, `${field} is required`);
  return s.split('/').map(encodeURIComponent).join('/');
};
const runId = (req: Req) => pathOf(req.run_id, 'run_id');
/** Whether an `optional` proto3 field was set (proto-loader with oneofs: the synthetic `_field` oneof). */
const has = (req: Req, field: string) =>
  req[`_${field}`] === field || (req[field] !== undefined && req[field] !== null && !(`_${field}` in req));
/** null → unset (proto3 default: '' for strings, 0 for numbers, absent for messages). */
const clean = (v: unknown): unknown =>
  Array.isArray(v)
    ? v.map(clean)
    : v && typeof v === 'object'
      ? Object.fromEntries(Object.entries(v).flatMap(([k, x]) => (x === null ? [] : [[k, clean(x)]])))
      : v;

/**
 * The gRPC face of the gateway. Every call is carried out by the REST API of this same gateway with
 * the caller's credentials, so validation, authorization and results are identical by construction.
 */
const handlers: Record<string, Handler> = {
  Ping: (c) => c.api('GET', '/v1/ping'),
  Me: (c) => c.me(),
  ListDeployments: (c, r) => c.api('GET', `/v1/workspaces/${ws(r)}/deployments?${page(r)}`),
  GetDeployment: (c, r) => c.api('GET', `/v1/workspaces/${ws(r)}/deployments/${version(r)}`),
  CreateDeployment: upload('deployments'),
  ListConfigurations: (c, r) => c.api('GET', `/v1/workspaces/${ws(r)}/configurations?${page(r)}`),
  GetConfiguration: (c, r) => c.api('GET', `/v1/workspaces/${ws(r)}/configurations/${version(r)}`),
  CreateConfiguration: upload('configurations'),
  ListTokens: (c) => c.listTokens(),
  CreateToken: (c, r) => c.createToken(String(r.name ?? ''), Number(r.expires_in_days) || undefined),
  RevokeToken: (c, r) => c.revokeToken(String(r.id ?? '')),
  ListAllTokens: (c, r) =>
    c.listAllTokens({
      ...(r.user ? { user: String(r.user) } : {}),
      ...(r.state ? { state: String(r.state) } : {}),
    }),
  ListUsers: (c) => c.listUsers(),
  CreateUser: (c, r) =>
    c.api('POST', '/v1/admin/users', {
      email: String(r.email ?? ''),
      ...(r.name ? { name: String(r.name) } : {}),
      ...(r.workspace_id ? { workspace_id: String(r.workspace_id) } : {}),
      ...(r.role ? { role: String(r.role) } : {}),
    }),
  DisableUser: (c, r) => c.disableUser(pathOf(r.user, 'user'), r.reason ? String(r.reason) : undefined),
  EnableUser: (c, r) => c.enableUser(pathOf(r.user, 'user')),
  ListMembers: (c, r) =>
    c.api<unknown[]>('GET', `/v1/workspaces/${ws(r)}/members`).then((items) => ({ items })),
  AddMember: (c, r) =>
    c.api('POST', `/v1/workspaces/${ws(r)}/members`, {
      email: String(r.email ?? ''),
      role: String(r.role || 'member'),
    }),
  RemoveMember: (c, r) => c.api('DELETE', `/v1/workspaces/${ws(r)}/members/${pathOf(r.user, 'user')}`),
  GetDeviceLogin: (c, r) => c.describeDevice(String(r.user_code ?? '')),
  ApproveDeviceLogin: (c, r) => c.approveDevice(String(r.user_code ?? '')),
  ListScripts: (c, r) => c.api('GET', `/v1/workspaces/${ws(r)}/scripts?${page(r)}`),
  GetScript: (c, r) => c.api('GET', `/v1/workspaces/${ws(r)}/scripts/${pathOf(r.id_or_name, 'id_or_name')}`),
  DeleteScript: (c, r) =>
    c.api('DELETE', `/v1/workspaces/${ws(r)}/scripts/${pathOf(r.id_or_name, 'id_or_name')}`),
  UpsertScript: (c, r) =>
    c.api('POST', `/v1/workspaces/${ws(r)}/scripts`, {
      name: String(r.name ?? ''),
      entry_point: String(r.entry_point ?? ''),
      script_type: String(r.script_type || 'batch'),
      description: String(r.description ?? ''),
      ...(has(r, 'schedule') ? { schedule: String(r.schedule) || null } : {}),
      ...(has(r, 'profile') ? { profile: String(r.profile) || null } : {}),
      ...(has(r, 'active') ? { active: Boolean(r.active) } : {}),
      ...(has(r, 'timeout_seconds') ? { timeout_seconds: Number(r.timeout_seconds) || null } : {}),
      ...(has(r, 'timezone') ? { timezone: String(r.timezone) } : {}),
      ...(has(r, 'missed_policy') ? { missed_policy: String(r.missed_policy) } : {}),
      ...(has(r, 'overlap_policy') ? { overlap_policy: String(r.overlap_policy) } : {}),
    }),
  ListRuns: (c, r) => {
    const q =
      page(r) +
      (r.script_id ? `&script_id=${encodeURIComponent(String(r.script_id))}` : '') +
      (r.status ? `&status=${encodeURIComponent(String(r.status))}` : '');
    return c.api('GET', `/v1/workspaces/${ws(r)}/runs?${q}`);
  },
  GetRun: (c, r) => c.api('GET', `/v1/workspaces/${ws(r)}/runs/${runId(r)}`),
  CreateRun: (c, r) =>
    c.api('POST', `/v1/workspaces/${ws(r)}/runs`, {
      script_id_or_name: String(r.script_id_or_name ?? ''),
      ...(r.profile ? { profile: String(r.profile) } : {}),
    }),
  CancelRun: (c, r) => c.api('POST', `/v1/workspaces/${ws(r)}/runs/${runId(r)}/cancel`),
  GetRunLogs: (c, r) => c.api('GET', `/v1/workspaces/${ws(r)}/runs/${runId(r)}/logs`),
};

/** A failed call as a gRPC status, like the unary calls map them (with the HTTP status as metadata). */
function toServiceError(err: unknown): grpc.StatusObject {
  const status = err instanceof ClientError ? err.status : 500;
  const detail = err instanceof ClientError ? err.detail : 'internal error';
  const md = new grpc.Metadata();
  md.set('http-status', String(status));
  return {
    code: STATUS[status] ?? (status >= 500 ? grpc.status.INTERNAL : grpc.status.UNKNOWN),
    details: detail,
    metadata: md,
  };
}

/**
 * FollowRunLogs: the gateway's own SSE route (`GET …/runs/{id}/logs/stream`) with the caller's
 * credentials, each `line` / the `end` event re-sent as a LogEvent. Backpressure flows through (the
 * SSE body is read only as fast as the gRPC client takes messages); a client cancel aborts the
 * upstream request, which closes the gateway's consumer.
 */
function followRunLogs(
  call: grpc.ServerWritableStream<Req, unknown>,
  c: RunwayClient,
  active: Set<() => void>,
): void {
  const ac = new AbortController();
  // Server shutdown: the follower ends with UNAVAILABLE at once (it may resume with from_seq elsewhere).
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
      ? undefined
      : new Promise<void>((r) => {
          call.once('drain', () => r());
          ac.signal.addEventListener('abort', () => r(), { once: true });
        });
  Promise.resolve()
    .then(() => {
      const r = call.request;
      const from = Number(r.from_seq ?? 0);
      if (!Number.isSafeInteger(from) || from < 0)
        throw new ClientError(400, 'from_seq must be a non-negative integer');
      const wsId = String(r.workspace_id ?? '');
      const run = String(r.run_id ?? '');
      if (!wsId) throw new ClientError(400, 'workspace_id is required');
      if (!run) throw new ClientError(400, 'run_id is required');
      return c.followRunLogs(wsId, run, {
        from: Math.max(1, from),
        signal: ac.signal,
        onLine: (l) =>
          ac.signal.aborted
            ? undefined
            : send({ line: { seq: l.seq, stream: l.stream, ts: l.ts, text: l.text, part: l.part ?? false } }),
      });
    })
    .then((end) => {
      if (ac.signal.aborted) return;
      void send({ end: { line_count: end.lineCount, sealed: end.sealed } });
      call.end();
      active.delete(shutdown);
    })
    .catch((err: unknown) => {
      if (ac.signal.aborted || isAbortError(err)) return;
      call.emit('error', toServiceError(err));
    });
}

export interface GrpcServerHandle {
  port: number;
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

export async function startGrpcServer(opts: {
  port: number;
  host: string;
  restBase: string;
  /** Largest request message of an authenticated call (default 110 MiB); others are never read. */
  maxMessageBytes?: number;
}): Promise<GrpcServerHandle> {
  const pkg = loadRunwayPackage();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes ?? 110 * 1024 * 1024,
    interceptors: [authenticateFirst(opts.restBase)],
  });
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers)) {
    impl[name] = (call: grpc.ServerUnaryCall<Req, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const auth = call.metadata.get('authorization')[0];
      const token = typeof auth === 'string' ? auth.replace(/^Bearer\s+/i, '') : undefined;
      const c = new RunwayClient({ apiBase: opts.restBase, token });
      Promise.resolve()
        .then(() => handler(c, call.request))
        .then((res) => callback(null, clean(res)))
        .catch((err: unknown) => callback(toServiceError(err)));
    };
  }
  const follows = new Set<() => void>();
  impl.FollowRunLogs = (call: grpc.ServerWritableStream<Req, unknown>) => {
    const auth = call.metadata.get('authorization')[0];
    const token = typeof auth === 'string' ? auth.replace(/^Bearer\s+/i, '') : undefined;
    followRunLogs(call, new RunwayClient({ apiBase: opts.restBase, token }), follows);
  };
  server.addService(pkg.runway.v1.Runway.service, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
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
