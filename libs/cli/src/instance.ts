import { loadConfig, type RunwayConfig } from '#libs/config';
import { createKysely } from '#libs/database';
import { integrationRegistry } from '#libs/contracts';
import { EventStore } from '#libs/eventstore';
import { connectNats, drainNats, type NatsConnection } from '#libs/nats';
import type { Kysely } from 'kysely';

/** The local instance, found through the same environment as `npm start`. */
export interface Instance {
  config: RunwayConfig;
  natsUrl: string;
  databaseUrl: string;
}

export function findInstance(env: NodeJS.ProcessEnv = process.env): Instance {
  const config = loadConfig(env);
  return {
    config,
    natsUrl: config.nats.url ?? `nats://127.0.0.1:${config.nats.port}`,
    databaseUrl: config.database.url ?? `postgres://runway:runway@127.0.0.1:${config.database.port}/runway`,
  };
}

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
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
    nc = await connectNats({ url: instance.natsUrl, name: 'runway-cli', reconnectForever: false });
  } catch {
    throw new CliError(
      `cannot reach NATS at ${instance.natsUrl}: is Runway running? (set NATS_URL or RUNWAY_NATS_PORT)`,
    );
  }
  const store = new EventStore(nc, integrationRegistry(), {
    stream: instance.config.events.stream,
    subjectPrefix: instance.config.events.subjectPrefix,
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
