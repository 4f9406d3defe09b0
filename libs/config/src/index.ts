import { resolve } from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(1).max(65535);

/** Every environment variable Runway reads, with its default. One validated object per process. */
const schema = z.object({
  RUNWAY_HTTP_PORT: port.default(8080),
  RUNWAY_GRPC_PORT: port.default(50051),
  RUNWAY_HOST: z.string().min(1).default('127.0.0.1'),
  RUNWAY_DATA_DIR: z.string().min(1).default('./.runway'),
  RUNWAY_NATS_PORT: port.default(4222),
  RUNWAY_PG_PORT: port.default(5433),
  NATS_URL: z.string().regex(/^(nats|tls):\/\/\S+$/, 'must look like nats://host:port').optional(),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must look like postgres://user:pass@host:port/db').optional(),
  RUNWAY_MASTER_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/=_-]{43,}$/, 'must be a base64 encoded 32-byte key')
    .optional(),
  RUNWAY_EVENTS_STREAM: z.string().regex(/^[A-Za-z0-9_-]+$/).default('EVENTS'),
  RUNWAY_SUBJECT_PREFIX: z.string().regex(/^[A-Za-z0-9_-]*$/).default(''),
  RUNWAY_PYTHON: z.string().min(1).default('python3'),
  RUNWAY_WORKER_SLOTS: z.coerce.number().int().min(1).max(256).default(4),
  RUNWAY_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  RUNWAY_DEV_AUTO_APPROVE: z.enum(['0', '1', 'true', 'false']).default('0'),
  RUNWAY_PUBLIC_URL: z.string().url().optional(),
  RUNWAY_LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('warn'),
});

export type RunwayEnv = z.infer<typeof schema>;

export interface RunwayConfig {
  http: { host: string; port: number };
  grpc: { port: number };
  dataDir: string;
  nats: { url: string | undefined; port: number };
  database: { url: string | undefined; port: number };
  masterKey: string | undefined;
  events: { stream: string; subjectPrefix: string };
  python: string;
  worker: { slots: number };
  shutdownTimeoutMs: number;
  logLevel: RunwayEnv['RUNWAY_LOG_LEVEL'];
  /** Approve every CLI device login as the first admin (single-user local use). Off by default. */
  devAutoApprove: boolean;
  /** Base URL users reach the gateway at (default http://<host>:<port>). */
  publicUrl: string;
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
        const shown = name === 'RUNWAY_MASTER_KEY' || name === 'DATABASE_URL' ? '(hidden)' : JSON.stringify(picked[name]);
        return `${name}=${shown}: ${issue.message}`;
      }),
    );
  }
  const e = parsed.data;
  return {
    http: { host: e.RUNWAY_HOST, port: e.RUNWAY_HTTP_PORT },
    grpc: { port: e.RUNWAY_GRPC_PORT },
    dataDir: resolve(e.RUNWAY_DATA_DIR),
    nats: { url: e.NATS_URL, port: e.RUNWAY_NATS_PORT },
    database: { url: e.DATABASE_URL, port: e.RUNWAY_PG_PORT },
    masterKey: e.RUNWAY_MASTER_KEY,
    events: { stream: e.RUNWAY_EVENTS_STREAM, subjectPrefix: e.RUNWAY_SUBJECT_PREFIX },
    python: e.RUNWAY_PYTHON,
    worker: { slots: e.RUNWAY_WORKER_SLOTS },
    shutdownTimeoutMs: e.RUNWAY_SHUTDOWN_TIMEOUT_MS,
    logLevel: e.RUNWAY_LOG_LEVEL,
    devAutoApprove: e.RUNWAY_DEV_AUTO_APPROVE === '1' || e.RUNWAY_DEV_AUTO_APPROVE === 'true',
    publicUrl: (e.RUNWAY_PUBLIC_URL ?? `http://${e.RUNWAY_HOST}:${e.RUNWAY_HTTP_PORT}`).replace(/\/$/, ''),
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
