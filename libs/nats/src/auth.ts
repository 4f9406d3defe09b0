import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credsAuthenticator, type Authenticator } from '@nats-io/transport-node';
import { isNatsSyncInterval, type NatsAuth } from '#libs/config';
import { ensureSecretFile } from '#libs/secrets';

/**
 * The users of a nats-server that Runway starts itself:
 * - `runway`: the services (the trusted core): everything.
 * - `worker`: a worker process: its run aggregates, its logs, its leases, reading what a run needs.
 * - `admin`: the operator CLI (`runway admin …`): reads the streams, asks the services, never
 *   publishes an event.
 */
export const NATS_USERS = ['runway', 'worker', 'admin'] as const;
export type NatsUser = (typeof NATS_USERS)[number];
export type NatsCredentials = Readonly<Record<NatsUser, string>>;

/** What the permissions are scoped to: the event stream and the subject prefix of the installation. */
export interface NatsScope {
  stream: string;
  subjectPrefix: string;
}

export const DEFAULT_NATS_SCOPE: NatsScope = { stream: 'EVENTS', subjectPrefix: '' };

/** The connection options of a NATS URL: servers without credentials, plus user/pass or token. */
export interface NatsClientOptions {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  authenticator?: Authenticator;
}

/** The servers of a NATS URL list (`nats://h1:4222,nats://h2:4222`, spaces allowed after the commas). */
export function splitNatsUrls(url: string): string[] {
  return url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Splits credentials off a URL (`nats://user:pass@host:port`, `nats://token@host:port`) or a
 * comma-separated list of them (a cluster: every server goes into `servers`; the credentials are
 * those of the first URL that has some); explicit `auth` (NATS_USER/NATS_PASSWORD, NATS_TOKEN,
 * NATS_CREDS) wins over the URLs'.
 */
export function natsClientOptions(url: string, auth?: NatsAuth): NatsClientOptions {
  let user = '';
  let pass = '';
  const servers = splitNatsUrls(url).map((one) => {
    const u = new URL(one);
    if (!user && !pass && (u.username || u.password)) {
      user = decodeURIComponent(u.username);
      pass = decodeURIComponent(u.password);
    }
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  });
  if (auth) {
    switch (auth.kind) {
      case 'user':
        return { servers, user: auth.user, pass: auth.password };
      case 'token':
        return { servers, token: auth.token };
      case 'creds':
        return { servers, authenticator: credsAuthenticator(readFileSync(auth.file)) };
      default: {
        const never: never = auth;
        throw new Error(`unknown NATS auth ${String(never)}`);
      }
    }
  }
  if (pass) return { servers, user, pass };
  if (user) return { servers, token: user };
  return { servers };
}

/** A URL (or comma-separated list of URLs) safe to print: passwords (or tokens) replaced by `***`. */
export function redactUrl(url: string): string {
  const one = (s: string) => {
    try {
      const u = new URL(s);
      if (u.password) u.password = '***';
      else if (u.username) u.username = '***';
      return u.toString().replace(/\/$/, '');
    } catch {
      return '(invalid URL)';
    }
  };
  return url.includes(',') ? splitNatsUrls(url).map(one).join(',') : one(url);
}

/** `nats://user:password@host:port` for one of the users. */
export function natsUrlWithCredentials(host: string, port: number, user: string, password: string): string {
  return `nats://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}`;
}

/** The passwords of every user, under `<dir>/<user>` (0600, in a 0700 directory), made once and reused. */
export function ensureNatsCredentials(dir: string): NatsCredentials {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return {
    runway: ensureSecretFile(join(dir, 'runway')),
    worker: ensureSecretFile(join(dir, 'worker')),
    admin: ensureSecretFile(join(dir, 'admin')),
  };
}

export interface Permissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[]; deny?: string[] };
}

function prefixed(scope: NatsScope, subject: string): string {
  return scope.subjectPrefix ? `${scope.subjectPrefix}.${subject}` : subject;
}

/** Stream names a worker touches besides the event stream (kept in step with libs/blobs and the leases). */
function workerStreams(scope: NatsScope): {
  leases: string;
  slots: string;
  apps: string;
  blobs: string;
  configurations: string;
} {
  const p = scope.subjectPrefix;
  return {
    leases: p ? `KV_RUN_LEASES_${p}` : 'KV_RUN_LEASES',
    // Runs in progress per workspace (the concurrency quota).
    slots: p ? `KV_RUN_SLOTS_${p}` : 'KV_RUN_SLOTS',
    // Interactive apps in progress per workspace (RUNWAY_INTERACTIVE_PER_WORKSPACE).
    apps: p ? `KV_APP_SLOTS_${p}` : 'KV_APP_SLOTS',
    blobs: p ? `OBJ_${p}_blobs` : 'OBJ_runway_blobs',
    // Configuration contents (secrets only as ciphertext under the workspace's data key).
    configurations: p ? `OBJ_${p}_configurations` : 'OBJ_runway_configurations',
  };
}

/**
 * The worker: appends to run aggregates only (`evt.*.run.*`), publishes run logs, keeps its leases,
 * and reads the event stream, the deployment blobs and the leases. It cannot publish any other
 * event type, create or change the event stream, reach the services' request subjects, or read
 * any other stream or bucket (device codes, other installations' streams).
 */
export function workerPermissions(scope: NatsScope): Permissions {
  const { leases, slots, apps, blobs, configurations } = workerStreams(scope);
  const readable = [scope.stream, leases, slots, apps, blobs, configurations];
  const leaseBucket = leases.slice('KV_'.length);
  const slotsBucket = slots.slice('KV_'.length);
  const appsBucket = apps.slice('KV_'.length);
  return {
    publish: {
      allow: [
        '$JS.API.INFO',
        ...readable.map((s) => `$JS.API.STREAM.INFO.${s}`),
        // The leases bucket and the blob bucket are opened with create-if-missing.
        `$JS.API.STREAM.CREATE.${leases}`,
        `$JS.API.STREAM.UPDATE.${leases}`,
        `$JS.API.STREAM.CREATE.${slots}`,
        `$JS.API.STREAM.CREATE.${apps}`,
        `$JS.API.STREAM.CREATE.${blobs}`,
        `$JS.API.STREAM.CREATE.${configurations}`,
        ...readable.flatMap((s) => [
          `$JS.API.CONSUMER.CREATE.${s}`,
          `$JS.API.CONSUMER.CREATE.${s}.>`,
          `$JS.API.CONSUMER.INFO.${s}.*`,
          `$JS.API.CONSUMER.DELETE.${s}.*`,
          `$JS.API.CONSUMER.MSG.NEXT.${s}.*`,
          `$JS.API.DIRECT.GET.${s}`,
          `$JS.API.DIRECT.GET.${s}.>`,
          `$JS.API.STREAM.MSG.GET.${s}`,
          `$JS.ACK.${s}.>`,
        ]),
        `$JS.API.CONSUMER.DURABLE.CREATE.${scope.stream}.*`,
        prefixed(scope, 'evt.*.run.*'),
        prefixed(scope, 'logs.>'),
        `$KV.${leaseBucket}.>`,
        `$KV.${slotsBucket}.>`,
        `$KV.${appsBucket}.>`,
      ],
    },
    subscribe: { allow: ['_INBOX.>', prefixed(scope, 'evt.*.run.*')] },
  };
}

/** The operator CLI: reads streams and consumers, asks the services (`runway.>`), publishes no event. */
export function adminPermissions(scope: NatsScope): Permissions {
  return {
    publish: {
      allow: [
        '$JS.API.INFO',
        '$JS.API.STREAM.NAMES',
        '$JS.API.STREAM.LIST',
        '$JS.API.STREAM.INFO.>',
        '$JS.API.STREAM.MSG.GET.>',
        '$JS.API.DIRECT.GET.>',
        '$JS.API.CONSUMER.>',
        '$JS.ACK.>',
        prefixed(scope, 'runway.>'),
      ],
    },
    subscribe: { allow: ['_INBOX.>'] },
  };
}

/** The services: everything (they own the streams, the buckets and every request subject). */
export function runwayPermissions(): Permissions {
  return { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } };
}

function quote(s: string): string {
  return JSON.stringify(s);
}

export function renderPermissions(p: Permissions, indent: string): string {
  const list = (xs: string[]) => `[${xs.map(quote).join(', ')}]`;
  const side = (name: string, s: { allow: string[]; deny?: string[] }) =>
    `${indent}  ${name}: { allow: ${list(s.allow)}${s.deny ? `, deny: ${list(s.deny)}` : ''} }`;
  return [`{`, side('publish', p.publish), side('subscribe', p.subscribe), `${indent}}`].join('\n');
}

/** The route password of a cluster's nodes, under `<dir>/route` (0600), made once and reused. */
export function ensureNatsRouteCredential(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return ensureSecretFile(join(dir, 'route'));
}

/** One node's part of a cluster: its routes to the others (all on `host`), authenticated as `route`. */
export interface NatsClusterNodeConfig {
  /** Cluster name (the same on every node). */
  name: string;
  /** This node's name (`server_name`, unique in the cluster). */
  serverName: string;
  /** Port this node accepts routes on. */
  port: number;
  /** Route ports of every node (this node's own is ignored by the server). */
  routePorts: readonly number[];
  /** The route password (user `route`), the same on every node. */
  routePassword: string;
}

/**
 * How often JetStream fsyncs its files (`jetstream { sync_interval }`): RUNWAY_NATS_SYNC_INTERVAL,
 * `always` (fsync every write before the ack) or a Go duration (`30s`, `2m`, `1m30s`); undefined
 * when unset: the server's default (2 minutes). Throws on anything else.
 */
export function natsSyncInterval(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!isNatsSyncInterval(value)) {
    throw new Error(
      `RUNWAY_NATS_SYNC_INTERVAL=${JSON.stringify(value)}: must be \`always\` or a positive duration such as 10s or 2m`,
    );
  }
  return value;
}

/**
 * A nats-server configuration with JetStream and password authentication: no anonymous user, one
 * entry per Runway user with its permissions. `syncInterval` (default: RUNWAY_NATS_SYNC_INTERVAL,
 * see natsSyncInterval; null: the server's default) sets JetStream's fsync interval. With
 * `cluster`, the node also routes to the other nodes on the same host (route connections
 * authenticated with their own password); with `monitorPort`, the monitoring endpoints (/healthz)
 * listen on the host.
 */
export function natsServerConfig(opts: {
  host: string;
  port: number;
  storeDir: string;
  credentials: NatsCredentials;
  scope?: NatsScope;
  syncInterval?: string | null;
  cluster?: NatsClusterNodeConfig;
  monitorPort?: number;
  /** `server_name` of a single server (a cluster node's is its cluster.serverName). */
  serverName?: string;
}): string {
  const scope = opts.scope ?? DEFAULT_NATS_SCOPE;
  const syncInterval = natsSyncInterval(
    opts.syncInterval === undefined
      ? process.env.RUNWAY_NATS_SYNC_INTERVAL
      : (opts.syncInterval ?? undefined),
  );
  const perms: Record<NatsUser, Permissions> = {
    runway: runwayPermissions(),
    worker: workerPermissions(scope),
    admin: adminPermissions(scope),
  };
  const users = NATS_USERS.map(
    (u) =>
      `    { user: ${quote(u)}, password: ${quote(opts.credentials[u])}, permissions: ${renderPermissions(perms[u], '      ')} }`,
  );
  return [
    '# Written by Runway on every start (libs/nats). Credentials: the files under credentials/.',
    `host: ${quote(opts.host)}`,
    `port: ${opts.port}`,
    ...(opts.serverName && !opts.cluster ? [`server_name: ${quote(opts.serverName)}`] : []),
    `jetstream { store_dir: ${quote(opts.storeDir)}${syncInterval ? `, sync_interval: ${quote(syncInterval)}` : ''} }`,
    'authorization {',
    '  users: [',
    users.join(',\n'),
    '  ]',
    '}',
    ...(opts.monitorPort !== undefined ? [`http: ${quote(`${opts.host}:${opts.monitorPort}`)}`] : []),
    ...(opts.cluster ? clusterBlock(opts.host, opts.cluster) : []),
    '',
  ].join('\n');
}

function clusterBlock(host: string, c: NatsClusterNodeConfig): string[] {
  const route = (port: number) =>
    quote(`nats-route://route:${encodeURIComponent(c.routePassword)}@${host}:${port}`);
  return [
    `server_name: ${quote(c.serverName)}`,
    'cluster {',
    `  name: ${quote(c.name)}`,
    `  listen: ${quote(`${host}:${c.port}`)}`,
    `  authorization { user: "route", password: ${quote(c.routePassword)}, timeout: 2 }`,
    `  routes: [${c.routePorts.map(route).join(', ')}]`,
    '}',
  ];
}
