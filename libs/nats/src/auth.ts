import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credsAuthenticator, type Authenticator } from '@nats-io/transport-node';
import type { NatsAuth } from '#libs/config';
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

/**
 * Splits credentials off a URL (`nats://user:pass@host:port`, `nats://token@host:port`); explicit
 * `auth` (NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_CREDS) wins over the URL's.
 */
export function natsClientOptions(url: string, auth?: NatsAuth): NatsClientOptions {
  const u = new URL(url);
  const user = decodeURIComponent(u.username);
  const pass = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  const servers = [u.toString().replace(/\/$/, '')];
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

/** A URL safe to print: the password (or token) replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    else if (u.username) u.username = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(invalid URL)';
  }
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
  blobs: string;
  configurations: string;
} {
  const p = scope.subjectPrefix;
  return {
    leases: p ? `KV_RUN_LEASES_${p}` : 'KV_RUN_LEASES',
    // Runs in progress per workspace (the concurrency quota).
    slots: p ? `KV_RUN_SLOTS_${p}` : 'KV_RUN_SLOTS',
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
  const { leases, slots, blobs, configurations } = workerStreams(scope);
  const readable = [scope.stream, leases, slots, blobs, configurations];
  const leaseBucket = leases.slice('KV_'.length);
  const slotsBucket = slots.slice('KV_'.length);
  return {
    publish: {
      allow: [
        '$JS.API.INFO',
        ...readable.map((s) => `$JS.API.STREAM.INFO.${s}`),
        // The leases bucket and the blob bucket are opened with create-if-missing.
        `$JS.API.STREAM.CREATE.${leases}`,
        `$JS.API.STREAM.UPDATE.${leases}`,
        `$JS.API.STREAM.CREATE.${slots}`,
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

/**
 * A nats-server configuration (2.9-compatible) with JetStream and password authentication: no
 * anonymous user, one entry per Runway user with its permissions.
 */
export function natsServerConfig(opts: {
  host: string;
  port: number;
  storeDir: string;
  credentials: NatsCredentials;
  scope?: NatsScope;
}): string {
  const scope = opts.scope ?? DEFAULT_NATS_SCOPE;
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
    `jetstream { store_dir: ${quote(opts.storeDir)} }`,
    'authorization {',
    '  users: [',
    users.join(',\n'),
    '  ]',
    '}',
    '',
  ].join('\n');
}
