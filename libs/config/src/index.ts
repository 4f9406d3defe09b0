import { resolve } from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(1).max(65535);

/** `300s`, `5m`, `1h`, `250ms`, or a number of seconds → seconds. */
function durationSeconds(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v);
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return unit === 'ms' ? n / 1000 : unit === 'm' ? n * 60 : unit === 'h' ? n * 3600 : n;
}

/** A JetStream fsync interval: `always`, or a positive Go duration (`10s`, `2m`, `1m30s`); '' is unset. */
export function isNatsSyncInterval(value: string): boolean {
  return (
    value === '' ||
    (/^(always|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$/.test(value) && !/^[0.]+[a-zµ]+$/.test(value))
  );
}

/** The services besides the gateway. */
export const HOSTED_SERVICES = [
  'deployments',
  'configurations',
  'scheduling',
  'execution',
  'logs',
  'alerting',
] as const;
export type HostedService = (typeof HOSTED_SERVICES)[number];

const DURATION_UNITS_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** `90s`, `30m`, `12h`, `7d` as milliseconds. */
const sessionDuration = z
  .string()
  .regex(/^[1-9][0-9]{0,6}[smhd]$/, 'must be a duration such as 90s, 30m, 12h or 7d')
  .transform(
    (v) => Number(v.slice(0, -1)) * DURATION_UNITS_MS[v.slice(-1) as keyof typeof DURATION_UNITS_MS],
  );

/** Every environment variable Runway reads, with its default. One validated object per process. */
const schema = z.object({
  RUNWAY_HTTP_PORT: port.default(8080),
  RUNWAY_GRPC_PORT: port.default(50051),
  /** A service or worker run on its own (compose, Kubernetes) answers GET /healthz on this port (unset: no HTTP listener). */
  RUNWAY_HEALTH_PORT: port.optional(),
  RUNWAY_HOST: z.string().min(1).default('127.0.0.1'),
  RUNWAY_DATA_DIR: z.string().min(1).default('./.runway'),
  RUNWAY_NATS_PORT: port.default(4222),
  RUNWAY_PG_PORT: port.default(5433),
  /** One server, or a cluster's servers comma-separated: `nats://user:pass@h1:4222,nats://h2:4222`. */
  NATS_URL: z
    .string()
    .refine((v) => {
      const parts = v.split(',').map((x) => x.trim());
      return parts.length > 0 && parts.every((x) => /^(nats|tls):\/\/\S+$/.test(x) && URL.canParse(x));
    }, 'must look like nats://host:port (or several, comma-separated: nats://h1:4222,nats://h2:4222)')
    .optional(),
  /** Replicas of every stream, KV bucket and object store Runway creates (EVENTS, LOGS, buckets). */
  RUNWAY_NATS_REPLICAS: z.coerce.number().int().min(1).max(5).optional(),
  /**
   * Without NATS_URL: nats-servers `npm start` runs clustered on loopback (1: one server; 3 or 5:
   * a cluster, with RUNWAY_NATS_REPLICAS defaulting to the same number). `npm start -- --cluster 3`.
   */
  RUNWAY_NATS_CLUSTER: z.coerce
    .number()
    .int()
    .refine((n) => n === 1 || n === 3 || n === 5, 'must be 1, 3 or 5')
    .default(1),
  /** Credentials for NATS_URL's server (besides `nats://user:pass@host` or `nats://token@host` in the URL itself). */
  NATS_USER: z.string().min(1).optional(),
  NATS_PASSWORD: z.string().min(1).optional(),
  NATS_TOKEN: z.string().min(1).optional(),
  /** A NATS credentials file (JWT + nkey seed, as `nsc` writes them). */
  NATS_CREDS: z.string().min(1).optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S+$/, 'must look like postgres://user:pass@host:port/db')
    .optional(),
  RUNWAY_MASTER_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/=_-]{43,}$/, 'must be a base64 encoded 32-byte key')
    .optional(),
  RUNWAY_EVENTS_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('EVENTS'),
  RUNWAY_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]*$/)
    .default(''),
  RUNWAY_PYTHON: z.string().min(1).default('python3'),
  /** uv for deployments' own dependencies (docs/dependencies.md); default: .tools/uv from setup, else PATH; `off`: none. */
  RUNWAY_UV: z.string().min(1).optional(),
  /** The package index uv installs deployments' dependencies from (default: UV_INDEX_URL, else PyPI). */
  RUNWAY_PIP_INDEX_URL: z.string().url().optional(),
  UV_INDEX_URL: z.string().url().optional(),
  /** Dependency environments a host keeps (least recently used removed first), and their total size. */
  RUNWAY_DEPS_MAX_ENVIRONMENTS: z.coerce.number().int().min(1).default(20),
  RUNWAY_DEPS_MAX_GB: z.coerce.number().min(0).default(20),
  /** index: the install step reaches the package index's hosts only (through a proxy); host: the host's network. */
  RUNWAY_DEPS_NETWORK: z.enum(['index', 'host']).default('index'),
  /** More hosts the install step may reach (comma-separated), e.g. a mirror's file host. */
  RUNWAY_DEPS_ALLOWED_HOSTS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((x) => x.trim().toLowerCase())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(/^[a-z0-9.-]+$/, 'a host name')))
    .optional(),
  RUNWAY_WORKER_SLOTS: z.coerce.number().int().min(1).max(256).default(4),
  /** Workers `npm start` runs in its own process (0: none, run them with services/execution worker-main). */
  RUNWAY_EMBEDDED_WORKERS: z.coerce.number().int().min(0).max(16).default(1),
  /** Server-wide default run timeout; a job may set its own. */
  RUNWAY_RUN_TIMEOUT_MINUTES: z.coerce
    .number()
    .positive()
    .max(7 * 24 * 60)
    .default(120),
  /** Time between SIGTERM and SIGKILL when a run is cancelled or times out. */
  RUNWAY_KILL_GRACE_SECONDS: z.coerce.number().min(0).max(3600).default(10),
  /** Runs ended longer ago leave the event stream for its archive (docs/scale.md); 0 = never. */
  RUNWAY_ARCHIVE_RUNS_AFTER_DAYS: z.coerce.number().min(0).max(36500).default(30),
  /** Deployment packages: largest upload (compressed archive, or one blob), most files, most bytes of files. */
  RUNWAY_DEPLOY_MAX_UPLOAD_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(128 * 1024 * 1024),
  RUNWAY_DEPLOY_MAX_FILES: z.coerce.number().int().min(1).max(1_000_000).default(20_000),
  RUNWAY_DEPLOY_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(256 * 1024 * 1024),
  /** Unreferenced deployment blobs older than this are deleted by the periodic sweep (every interval; 0 = never). */
  RUNWAY_BLOB_GC_GRACE_SECONDS: z.coerce.number().int().min(0).default(3600),
  RUNWAY_BLOB_GC_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(3600),
  RUNWAY_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  /**
   * A scheduler told to stop first fires what is due within this long (ms; 0 = stop at once): its
   * replacement needs about a second to start and load the jobs, so a restart delays no fire.
   */
  RUNWAY_SCHEDULER_STOP_GRACE_MS: z.coerce.number().int().min(0).max(60_000).default(2_000),
  /** A new or changed job schedule must not fire more often than this (seconds; 0 = no limit). */
  RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(86_400).default(60),
  /** Requests per minute one webhook (`POST /hooks/<token>`) accepts per gateway; more: 429. */
  RUNWAY_WEBHOOK_RATE_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).default(60),
  /** Uploads (deployment packages and blobs, configurations) one workspace may have in flight at once, per gateway. */
  RUNWAY_MAX_CONCURRENT_UPLOADS: z.coerce.number().int().min(1).max(1000).default(8),
  /** Device-code logins one client address may start per minute (unauthenticated route). */
  RUNWAY_RATE_DEVICE_CODES_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).default(10),
  /** Token polls of the device-code login one client address may make per minute (unauthenticated route). */
  RUNWAY_RATE_TOKEN_POLLS_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).default(120),
  /**
   * Largest gRPC request message, read only once the caller is authenticated (default: the largest
   * deployment upload plus 1 MiB).
   */
  RUNWAY_GRPC_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .optional(),
  /** The services `npm start` hosts in its process (comma-separated; the gateway always runs); the others run on their own (services/<name> main). */
  RUNWAY_SERVICES: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(HOSTED_SERVICES)))
    .optional(),
  /** Alert emails go through this SMTP server (smtp://user:pass@host:port, smtps:// for TLS); unset: no email. */
  RUNWAY_SMTP_URL: z
    .string()
    .url()
    .refine((u) => /^smtps?:\/\//.test(u), 'must be smtp://… or smtps://…')
    .optional(),
  /** The From address of alert emails. */
  RUNWAY_SMTP_FROM: z.string().email().default('runway@localhost'),
  /** Tries of one alert per channel before it becomes a dead letter. */
  RUNWAY_ALERT_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(8),
  /** First delay before an alert is sent again (doubles per try, at most 5 minutes). */
  RUNWAY_ALERT_RETRY_MS: z.coerce.number().int().min(10).max(600_000).default(2_000),
  /** Run logs (LOGS stream) are kept this long (hours; default 7 days). */
  RUNWAY_LOGS_MAX_AGE_HOURS: z.coerce
    .number()
    .min(0.01)
    .max(24 * 3650)
    .default(168),
  /** Most bytes the LOGS stream keeps (oldest dropped first); -1 = unlimited. */
  RUNWAY_LOGS_MAX_BYTES: z.coerce
    .number()
    .int()
    .refine((n) => n === -1 || n >= 1024 * 1024, 'must be -1 (unlimited) or at least 1048576')
    .default(-1),
  /** Per run, most bytes of lines a worker holds while the LOGS stream is slow; past it lines are dropped (with a marker). */
  RUNWAY_LOGS_QUEUE_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .default(32 * 1024 * 1024),
  /** The compatible GET …/runs/{id}/logs text stops growing at this size (with a marker line). */
  RUNWAY_LOGS_TEXT_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .default(16 * 1024 * 1024),
  /**
   * Projections that stop at a commit they cannot decode or apply instead of recording it as a dead
   * letter and moving on (comma-separated names, or `*` for all; docs/dead-letters.md).
   */
  RUNWAY_PROJECTIONS_HALT_ON_ERROR: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(/^(\*|[a-z][a-z0-9_]*)$/, 'a projection name or *')))
    .optional(),
  /** on: every run in a bubblewrap sandbox (workers refuse to start where it cannot work); off: trusted single-user mode. */
  RUNWAY_SANDBOX: z.enum(['on', 'off']).default('on'),
  /** Runs in progress at once per workspace, across every worker (0 = no limit); the others wait, pending. */
  RUNWAY_MAX_CONCURRENT_RUNS_PER_WORKSPACE: z.coerce.number().int().min(0).default(16),
  /** Size limit of each KV bucket Runway creates (leases, run slots, device codes), bytes; 0 = none. */
  RUNWAY_KV_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(64 * 1024 * 1024),
  /** Most bytes of output one run may log (its LOGS subject); past it lines are dropped with a note. */
  RUNWAY_RUN_LOG_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .default(256 * 1024 * 1024),
  /** Per run process: address space in MiB (RLIMIT_AS; 0 = unlimited). */
  RUNWAY_RUN_MEMORY_MB: z.coerce.number().int().min(0).default(8192),
  /** Processes and threads of a workspace's runs (RLIMIT_NPROC of its uid, as root; 0 = unlimited). */
  RUNWAY_RUN_MAX_PROCESSES: z.coerce.number().int().min(0).default(1024),
  /** Open files per run process (RLIMIT_NOFILE; 0 = unchanged). */
  RUNWAY_RUN_MAX_OPEN_FILES: z.coerce.number().int().min(0).default(4096),
  /** Largest file a run may write, MiB (RLIMIT_FSIZE; 0 = unlimited). */
  RUNWAY_RUN_MAX_FILE_MB: z.coerce.number().int().min(0).default(0),
  /** Interactive apps (docs/interactive.md): stopped after this long without an open connection (`300s`, `5m`, `1h`, or seconds). */
  RUNWAY_INTERACTIVE_IDLE: z
    .string()
    .regex(/^\d+(\.\d+)?(ms|s|m|h)?$/, 'a duration such as 300s, 5m or 1h')
    .default('5m')
    .transform(durationSeconds)
    .pipe(z.number().min(1, 'at least 1 second')),
  /** Interactive apps: how long an app may take to answer HTTP on its port before its run fails. */
  RUNWAY_INTERACTIVE_STARTUP_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  /** Interactive apps running at once per workspace, across workers (0 = no limit). */
  RUNWAY_INTERACTIVE_PER_WORKSPACE: z.coerce.number().int().min(0).default(5),
  /** Interactive apps one worker runs at once (besides its RUNWAY_WORKER_SLOTS batch runs). */
  RUNWAY_INTERACTIVE_PER_WORKER: z.coerce.number().int().min(1).max(1024).default(8),
  /** How long a requested app waits for a worker with room before its run fails (`limit`). */
  RUNWAY_INTERACTIVE_QUEUE_SECONDS: z.coerce.number().int().min(0).max(3600).default(30),
  /** Address space per interactive app process, MiB (default RUNWAY_RUN_MEMORY_MB; 0 = unlimited). */
  RUNWAY_INTERACTIVE_MEMORY_MB: z.coerce.number().int().min(0).optional(),
  /** Interface a worker's app endpoints listen on (default RUNWAY_HOST). */
  RUNWAY_WORKER_APP_BIND: z.string().min(1).optional(),
  /** Host name or address gateways use to reach this worker's app endpoints (default: the bind address). */
  RUNWAY_WORKER_ADVERTISE_HOST: z.string().min(1).max(300).optional(),
  /** JetStream's fsync interval in the nats-server Runway starts (libs/nats natsSyncInterval). */
  RUNWAY_NATS_SYNC_INTERVAL: z
    .string()
    .refine(isNatsSyncInterval, 'must be `always` or a positive duration such as 10s or 2m')
    .optional(),
  RUNWAY_DEV_AUTO_APPROVE: z.enum(['0', '1', 'true', 'false']).default('0'),
  RUNWAY_PUBLIC_URL: z.string().url().optional(),
  /** A dashboard session unused this long stops working (`<n>s|m|h|d`, docs/dashboard-auth.md). */
  RUNWAY_SESSION_IDLE: sessionDuration.prefault('12h'),
  /** A dashboard session stops working this long after sign-in, whatever its use. */
  RUNWAY_SESSION_MAX: sessionDuration.prefault('7d'),
  /** OpenID Connect sign-in (all of issuer, client id and secret, or none). */
  RUNWAY_OIDC_ISSUER: z.string().url().optional(),
  RUNWAY_OIDC_CLIENT_ID: z.string().min(1).optional(),
  RUNWAY_OIDC_CLIENT_SECRET: z.string().min(1).optional(),
  /** The label of the sign-in button. */
  RUNWAY_OIDC_NAME: z.string().min(1).max(60).default('Single sign-on'),
  /** Create a Runway user on the first OIDC sign-in of an unknown email (default off: an error page). */
  RUNWAY_OIDC_AUTO_CREATE: z.enum(['on', 'off']).default('off'),
  RUNWAY_LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('warn'),
});

export type RunwayEnv = z.infer<typeof schema>;

/** The names of every environment variable libs/config reads (deploy/ checks its files against them). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(schema.shape));

/** How to authenticate to an external NATS server (NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_CREDS). */
export type NatsAuth =
  | { kind: 'user'; user: string; password: string }
  | { kind: 'token'; token: string }
  | { kind: 'creds'; file: string };

const SECRET_VARIABLES = new Set([
  'RUNWAY_MASTER_KEY',
  'DATABASE_URL',
  'NATS_URL',
  'NATS_PASSWORD',
  'NATS_TOKEN',
  'RUNWAY_SMTP_URL',
  'RUNWAY_OIDC_CLIENT_SECRET',
]);

function natsAuthOf(e: RunwayEnv): NatsAuth | undefined {
  const given = [
    e.NATS_USER !== undefined || e.NATS_PASSWORD !== undefined,
    e.NATS_TOKEN !== undefined,
    e.NATS_CREDS !== undefined,
  ];
  if (given.filter(Boolean).length > 1)
    throw new ConfigError(['NATS_USER/NATS_PASSWORD, NATS_TOKEN and NATS_CREDS: set only one of them']);
  if (e.NATS_USER !== undefined || e.NATS_PASSWORD !== undefined) {
    if (e.NATS_USER === undefined || e.NATS_PASSWORD === undefined)
      throw new ConfigError(['NATS_USER and NATS_PASSWORD go together: set both']);
    return { kind: 'user', user: e.NATS_USER, password: e.NATS_PASSWORD };
  }
  if (e.NATS_TOKEN !== undefined) return { kind: 'token', token: e.NATS_TOKEN };
  if (e.NATS_CREDS !== undefined) return { kind: 'creds', file: resolve(e.NATS_CREDS) };
  return undefined;
}

export interface RunwayConfig {
  http: { host: string; port: number };
  /** Port of the GET /healthz listener of a standalone service or worker (RUNWAY_HEALTH_PORT). */
  healthPort: number | undefined;
  grpc: {
    port: number;
    /** Largest request message of an authenticated call (a call without valid credentials is never read). */
    maxMessageBytes: number;
  };
  quotas: {
    /** Per workspace and gateway: uploads in flight at once (429 past it). */
    concurrentUploads: number;
    /** Per client address and minute, on the unauthenticated device-code routes (429 with Retry-After past it). */
    deviceCodesPerMinute: number;
    tokenPollsPerMinute: number;
  };
  dataDir: string;
  /**
   * `url` may carry credentials (`nats://user:pass@host:port`) and may list several servers
   * (comma-separated); `auth` comes from NATS_USER/…, NATS_TOKEN or NATS_CREDS. `replicas`: of
   * every stream, KV bucket and object store Runway creates. `clusterNodes`: nats-servers the
   * embedded default runs (without NATS_URL).
   */
  nats: {
    url: string | undefined;
    port: number;
    auth: NatsAuth | undefined;
    replicas: number;
    clusterNodes: number;
  };
  database: { url: string | undefined; port: number };
  masterKey: string | undefined;
  events: { stream: string; subjectPrefix: string };
  python: string;
  /** Deployments' own dependencies (docs/dependencies.md). */
  deps: {
    uv: string | false | undefined;
    indexUrl: string | undefined;
    maxEnvironments: number;
    /** 0 = no size cap. */
    maxBytes: number;
    network: 'index' | 'host';
    allowedHosts: readonly string[];
  };
  worker: {
    slots: number;
    /** In-process workers of `npm start`. */
    embedded: number;
    runTimeoutSeconds: number;
    killGraceMs: number;
    /** Run processes in the bubblewrap sandbox (RUNWAY_SANDBOX). */
    sandbox: boolean;
    logMaxBytes: number;
    maxRunsPerWorkspace: number;
    limits: { memoryBytes: number; processes: number; openFiles: number; fileBytes: number };
    /** Interactive apps (docs/interactive.md). */
    interactive: {
      idleSeconds: number;
      startupSeconds: number;
      perWorkspace: number;
      perWorker: number;
      queueSeconds: number;
      memoryBytes: number;
      bindHost: string;
      advertiseHost: string;
    };
  };
  deployments: {
    maxUploadBytes: number;
    maxFiles: number;
    maxTotalBytes: number;
    blobGcGraceMs: number;
    blobGcIntervalMs: number;
  };
  /** Services hosted in the `npm start` process besides the gateway. */
  services: readonly HostedService[];
  alerting: { smtpUrl: string | undefined; smtpFrom: string; maxAttempts: number; retryMs: number };
  logs: {
    maxAgeMs: number;
    /** -1 = unlimited. */
    maxBytes: number;
    queueBytes: number;
    textMaxBytes: number;
  };
  shutdownTimeoutMs: number;
  scheduler: { stopGraceMs: number; minIntervalSeconds: number };
  projections: {
    /** Names of the projections that halt on a bad commit (`*`: all); the others dead-letter it. */
    haltOnError: readonly string[];
  };
  logLevel: RunwayEnv['RUNWAY_LOG_LEVEL'];
  /** Approve every CLI device login as the first admin (single-user local use). Off by default. */
  devAutoApprove: boolean;
  /** Base URL users reach the gateway at (default http://<host>:<port>). */
  publicUrl: string;
  /** Requests per minute one webhook accepts per gateway (RUNWAY_WEBHOOK_RATE_PER_MINUTE). */
  webhookRatePerMinute: number;
  /** Dashboard sessions: idle and absolute expiry. */
  sessions: { idleMs: number; maxMs: number };
  /** OpenID Connect sign-in, when configured. */
  oidc: { issuer: string; clientId: string; clientSecret: string; name: string; autoCreate: boolean } | null;
  /** Size limit of each KV bucket Runway creates (0 = none). */
  kvMaxBytes: number;
  /** Runs ended longer ago than this move to the event archive (0 = never; docs/scale.md). */
  archiveRunsAfterMs: number;
}

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment. Throws ConfigError naming every wrong variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): RunwayConfig {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') picked[key] = value;
  }
  const parsed = schema.safeParse(picked);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? '?');
        const shown = SECRET_VARIABLES.has(name) ? '(hidden)' : JSON.stringify(picked[name]);
        return `${name}=${shown}: ${issue.message}`;
      }),
    );
  }
  const e = parsed.data;
  const natsAuth = natsAuthOf(e);
  if (natsAuth && !e.NATS_URL)
    throw new ConfigError([
      'NATS_USER, NATS_PASSWORD, NATS_TOKEN and NATS_CREDS apply to NATS_URL: set NATS_URL too',
    ]);
  const oidcSet = [e.RUNWAY_OIDC_ISSUER, e.RUNWAY_OIDC_CLIENT_ID, e.RUNWAY_OIDC_CLIENT_SECRET].filter(
    Boolean,
  );
  if (oidcSet.length > 0 && oidcSet.length < 3)
    throw new ConfigError([
      'OpenID Connect sign-in needs all of RUNWAY_OIDC_ISSUER, RUNWAY_OIDC_CLIENT_ID and RUNWAY_OIDC_CLIENT_SECRET',
    ]);
  if (e.RUNWAY_SESSION_IDLE > e.RUNWAY_SESSION_MAX)
    throw new ConfigError(['RUNWAY_SESSION_IDLE must not be longer than RUNWAY_SESSION_MAX']);
  const clusterNodes = e.NATS_URL ? 1 : e.RUNWAY_NATS_CLUSTER;
  const replicas = e.RUNWAY_NATS_REPLICAS ?? clusterNodes;
  if (!e.NATS_URL && replicas > clusterNodes)
    throw new ConfigError([
      `RUNWAY_NATS_REPLICAS=${replicas}: the embedded NATS has ${clusterNodes} server(s) ` +
        '(set RUNWAY_NATS_CLUSTER, or NATS_URL to your cluster)',
    ]);
  return {
    http: { host: e.RUNWAY_HOST, port: e.RUNWAY_HTTP_PORT },
    healthPort: e.RUNWAY_HEALTH_PORT,
    grpc: {
      port: e.RUNWAY_GRPC_PORT,
      maxMessageBytes: e.RUNWAY_GRPC_MAX_MESSAGE_BYTES ?? e.RUNWAY_DEPLOY_MAX_UPLOAD_BYTES + 1024 * 1024,
    },
    quotas: {
      concurrentUploads: e.RUNWAY_MAX_CONCURRENT_UPLOADS,
      deviceCodesPerMinute: e.RUNWAY_RATE_DEVICE_CODES_PER_MINUTE,
      tokenPollsPerMinute: e.RUNWAY_RATE_TOKEN_POLLS_PER_MINUTE,
    },
    dataDir: resolve(e.RUNWAY_DATA_DIR),
    nats: { url: e.NATS_URL, port: e.RUNWAY_NATS_PORT, auth: natsAuth, replicas, clusterNodes },
    database: { url: e.DATABASE_URL, port: e.RUNWAY_PG_PORT },
    masterKey: e.RUNWAY_MASTER_KEY,
    events: { stream: e.RUNWAY_EVENTS_STREAM, subjectPrefix: e.RUNWAY_SUBJECT_PREFIX },
    python: e.RUNWAY_PYTHON,
    deps: {
      uv: e.RUNWAY_UV === 'off' ? false : e.RUNWAY_UV,
      indexUrl: e.RUNWAY_PIP_INDEX_URL ?? e.UV_INDEX_URL,
      maxEnvironments: e.RUNWAY_DEPS_MAX_ENVIRONMENTS,
      maxBytes: Math.round(e.RUNWAY_DEPS_MAX_GB * 1024 ** 3),
      network: e.RUNWAY_DEPS_NETWORK,
      allowedHosts: e.RUNWAY_DEPS_ALLOWED_HOSTS ?? [],
    },
    worker: {
      slots: e.RUNWAY_WORKER_SLOTS,
      embedded: e.RUNWAY_EMBEDDED_WORKERS,
      runTimeoutSeconds: Math.round(e.RUNWAY_RUN_TIMEOUT_MINUTES * 60),
      killGraceMs: Math.round(e.RUNWAY_KILL_GRACE_SECONDS * 1000),
      sandbox: e.RUNWAY_SANDBOX === 'on',
      logMaxBytes: e.RUNWAY_RUN_LOG_MAX_BYTES,
      maxRunsPerWorkspace: e.RUNWAY_MAX_CONCURRENT_RUNS_PER_WORKSPACE,
      limits: {
        memoryBytes: e.RUNWAY_RUN_MEMORY_MB * 1024 * 1024,
        processes: e.RUNWAY_RUN_MAX_PROCESSES,
        openFiles: e.RUNWAY_RUN_MAX_OPEN_FILES,
        fileBytes: e.RUNWAY_RUN_MAX_FILE_MB * 1024 * 1024,
      },
      interactive: {
        idleSeconds: e.RUNWAY_INTERACTIVE_IDLE,
        startupSeconds: e.RUNWAY_INTERACTIVE_STARTUP_SECONDS,
        perWorkspace: e.RUNWAY_INTERACTIVE_PER_WORKSPACE,
        perWorker: e.RUNWAY_INTERACTIVE_PER_WORKER,
        queueSeconds: e.RUNWAY_INTERACTIVE_QUEUE_SECONDS,
        memoryBytes: (e.RUNWAY_INTERACTIVE_MEMORY_MB ?? e.RUNWAY_RUN_MEMORY_MB) * 1024 * 1024,
        bindHost: e.RUNWAY_WORKER_APP_BIND ?? e.RUNWAY_HOST,
        advertiseHost: e.RUNWAY_WORKER_ADVERTISE_HOST ?? e.RUNWAY_WORKER_APP_BIND ?? e.RUNWAY_HOST,
      },
    },
    deployments: {
      maxUploadBytes: e.RUNWAY_DEPLOY_MAX_UPLOAD_BYTES,
      maxFiles: e.RUNWAY_DEPLOY_MAX_FILES,
      maxTotalBytes: e.RUNWAY_DEPLOY_MAX_BYTES,
      blobGcGraceMs: e.RUNWAY_BLOB_GC_GRACE_SECONDS * 1000,
      blobGcIntervalMs: e.RUNWAY_BLOB_GC_INTERVAL_SECONDS * 1000,
    },
    services: e.RUNWAY_SERVICES ?? HOSTED_SERVICES,
    alerting: {
      smtpUrl: e.RUNWAY_SMTP_URL,
      smtpFrom: e.RUNWAY_SMTP_FROM,
      maxAttempts: e.RUNWAY_ALERT_MAX_ATTEMPTS,
      retryMs: e.RUNWAY_ALERT_RETRY_MS,
    },
    logs: {
      maxAgeMs: Math.round(e.RUNWAY_LOGS_MAX_AGE_HOURS * 3600 * 1000),
      maxBytes: e.RUNWAY_LOGS_MAX_BYTES,
      queueBytes: e.RUNWAY_LOGS_QUEUE_BYTES,
      textMaxBytes: e.RUNWAY_LOGS_TEXT_MAX_BYTES,
    },
    shutdownTimeoutMs: e.RUNWAY_SHUTDOWN_TIMEOUT_MS,
    scheduler: {
      stopGraceMs: e.RUNWAY_SCHEDULER_STOP_GRACE_MS,
      minIntervalSeconds: e.RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS,
    },
    projections: { haltOnError: e.RUNWAY_PROJECTIONS_HALT_ON_ERROR ?? [] },
    logLevel: e.RUNWAY_LOG_LEVEL,
    devAutoApprove: e.RUNWAY_DEV_AUTO_APPROVE === '1' || e.RUNWAY_DEV_AUTO_APPROVE === 'true',
    kvMaxBytes: e.RUNWAY_KV_MAX_BYTES,
    archiveRunsAfterMs: e.RUNWAY_ARCHIVE_RUNS_AFTER_DAYS * 86_400_000,
    publicUrl: (e.RUNWAY_PUBLIC_URL ?? `http://${e.RUNWAY_HOST}:${e.RUNWAY_HTTP_PORT}`).replace(/\/$/, ''),
    webhookRatePerMinute: e.RUNWAY_WEBHOOK_RATE_PER_MINUTE,
    sessions: { idleMs: e.RUNWAY_SESSION_IDLE, maxMs: e.RUNWAY_SESSION_MAX },
    oidc:
      e.RUNWAY_OIDC_ISSUER && e.RUNWAY_OIDC_CLIENT_ID && e.RUNWAY_OIDC_CLIENT_SECRET
        ? {
            issuer: e.RUNWAY_OIDC_ISSUER,
            clientId: e.RUNWAY_OIDC_CLIENT_ID,
            clientSecret: e.RUNWAY_OIDC_CLIENT_SECRET,
            name: e.RUNWAY_OIDC_NAME,
            autoCreate: e.RUNWAY_OIDC_AUTO_CREATE === 'on',
          }
        : null,
  };
}

/** Loads the config or exits the process with a message naming the variable. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): RunwayConfig {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`runway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
