import { loadConfig, type RunwayConfig } from '#libs/config';
import { createKysely } from '#libs/database';
import { integrationRegistry } from '#libs/contracts';
import { EventStore } from '#libs/eventstore';
import { connectNats, drainNats, readEmbeddedCluster, redactUrl, type NatsConnection } from '#libs/nats';
import type { Kysely } from 'kysely';
import { join } from 'node:path';
import { readSecretFile } from '#libs/secrets';

/** The local instance, found through the same environment as `npm start`. */
export interface Instance {
  config: RunwayConfig;
  natsUrl: string;
  /**
   * The services' NATS user, for what the read-only admin user may not do (restoring streams). Only
   * the embedded default's (its password is in the data dir); with NATS_URL, that URL.
   */
  serviceNatsUrl: string;
  databaseUrl: string;
}

/**
 * Without NATS_URL / DATABASE_URL: the embedded servers of `npm start` on the same data dir, as the
 * NATS `admin` user and the PostgreSQL `runway` role, whose passwords are under the data dir.
 */
export function findInstance(env: NodeJS.ProcessEnv = process.env): Instance {
  let config = loadConfig(env);
  // An embedded cluster (`npm start -- --cluster N`) is recorded in the data dir: its client ports,
  // and the node count (so replicas default as they do for the running instance).
  const cluster = config.nats.url ? undefined : readEmbeddedCluster(join(config.dataDir, 'nats'));
  if (cluster && !env.RUNWAY_NATS_CLUSTER)
    config = loadConfig({ ...env, RUNWAY_NATS_CLUSTER: String(cluster.nodes) });
  const ports = cluster?.clientPorts ?? [config.nats.port];
  const secret = (...path: string[]) => {
    const file = join(config.dataDir, ...path);
    const value = readSecretFile(file);
    if (value === undefined) {
      throw new CliError(
        `no credentials in ${file}: is ${config.dataDir} the data dir of a running Runway? ` +
          '(set RUNWAY_DATA_DIR to it, or NATS_URL and DATABASE_URL)',
      );
    }
    return encodeURIComponent(value);
  };
  const embedded = (user: 'admin' | 'runway') =>
    ports.map((p) => `nats://${user}:${secret('nats', 'credentials', user)}@127.0.0.1:${p}`).join(',');
  // Getters: a command that needs only NATS (or only PostgreSQL) reads only that one's credentials.
  return {
    config,
    get natsUrl() {
      return config.nats.url ?? embedded('admin');
    },
    get serviceNatsUrl() {
      return config.nats.url ?? embedded('runway');
    },
    get databaseUrl() {
      return (
        config.database.url ??
        `postgres://runway:${secret('pg', 'credentials', 'runway')}@127.0.0.1:${config.database.port}/runway`
      );
    },
  };
}

/**
 * An error the CLI reports on its own: its message, the exit code, and with `--json` a code and
 * details in `{"error": {…}}` (the code defaults to the exit code's meaning).
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly code?: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export async function withNats<T>(
  instance: Instance,
  fn: (nc: NatsConnection, store: EventStore) => Promise<T>,
): Promise<T> {
  let nc: NatsConnection;
  try {
    nc = await connectNats({
      url: instance.natsUrl,
      auth: instance.config.nats.auth,
      name: 'runway-cli',
      reconnectForever: false,
    });
  } catch (err) {
    throw new CliError(
      `cannot reach NATS at ${redactUrl(instance.natsUrl)}: ${err instanceof Error ? err.message : String(err)}; ` +
        'is Runway running? (set RUNWAY_DATA_DIR to its data dir, or NATS_URL, or RUNWAY_NATS_PORT)',
    );
  }
  const store = new EventStore(nc, integrationRegistry(), {
    stream: instance.config.events.stream,
    subjectPrefix: instance.config.events.subjectPrefix,
    replicas: instance.config.nats.replicas,
  });
  try {
    return await fn(nc, store);
  } finally {
    await drainNats(nc);
  }
}

export async function withDb<T>(instance: Instance, fn: (db: Kysely<unknown>) => Promise<T>): Promise<T> {
  const db = createKysely<unknown>({ url: instance.databaseUrl, max: 2 });
  try {
    return await fn(db);
  } catch (err) {
    if (err instanceof Error && /ECONNREFUSED|connect/.test(err.message)) {
      throw new CliError(`cannot reach PostgreSQL: is Runway running? (set DATABASE_URL or RUNWAY_PG_PORT)`);
    }
    throw err;
  } finally {
    await db.destroy();
  }
}
