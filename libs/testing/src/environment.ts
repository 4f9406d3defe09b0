import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import {
  createKysely,
  dropDatabase,
  dropRole,
  ensureAppDatabase,
  ensureDatabase,
  migrateToLatest,
  startEmbeddedPostgres,
  type MigrationSet,
} from '#libs/database';
import { EventRegistry, EventStore } from '#libs/eventstore';
import { connectNats, drainNats, type NatsConnection } from '#libs/nats';
import {
  freePort,
  startNatsCluster,
  startNatsServer,
  type NatsClusterHandle,
  type NatsServerHandle,
} from '#libs/nats';

/**
 * Real services for one test file. NATS: NATS_URL when set (the test runner starts one for the whole
 * run; the URL carries the `runway` user's password), else a private nats-server with
 * authentication, its permissions scoped to this file's stream and prefix. Postgres: a fresh
 * database on DATABASE_URL's server (a superuser's URL), owned by a role of its own that is not a
 * superuser, else an embedded PostgreSQL. Every name (stream, subject prefix, database, role) is
 * unique to this file.
 */
export interface TestEnvironment {
  id: string;
  natsUrl: string;
  nats: NatsConnection;
  /** Only when this environment started its own server (for stop/restart tests). */
  natsServer?: NatsServerHandle;
  /** Only with `cluster`: the nodes of this environment's own cluster (natsUrl lists them all). */
  natsCluster?: NatsClusterHandle;
  /** Replicas of the streams, buckets and object stores (the cluster size, else 1). */
  replicas: number;
  databaseUrl: string;
  stream: string;
  subjectPrefix: string;
  newStore: (registry: EventRegistry, nc?: NatsConnection) => EventStore;
  /** A typed connection of this file's database (its untyped twin for runners: `untypedDb`). */
  newDb: <DB>() => Kysely<DB>;
  migrate: (sets: readonly MigrationSet[]) => Promise<void>;
  /** Env vars for a child process that must use these same services. */
  childEnv: () => Record<string, string>;
  close: () => Promise<void>;
}

const untypedTwins = new WeakMap<object, Kysely<unknown>>();

/**
 * The untyped connection to the same database as a TestEnvironment's `newDb` (what the projection
 * runner, rebuild and applyBatch take, like a service's ServiceContext.db).
 */
export function untypedDb<DB>(db: Kysely<DB>): Kysely<unknown> {
  const twin = untypedTwins.get(db);
  if (!twin) throw new Error('untypedDb: not a connection made by TestEnvironment.newDb');
  return twin;
}

/**
 * `ownNats`: a nats-server of this file's own. `cluster: N`: N nats-servers of this file's own,
 * clustered on loopback (startNatsCluster), with N replicas of everything (RUNWAY_NATS_REPLICAS in
 * childEnv); only the files that test clustering ask for one.
 */
export async function createTestEnvironment(
  opts: { ownNats?: boolean; cluster?: number } = {},
): Promise<TestEnvironment> {
  const id = `t${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const cleanups: (() => Promise<void>)[] = [];
  let natsServer: NatsServerHandle | undefined;
  let natsCluster: NatsClusterHandle | undefined;
  let natsUrl = process.env.NATS_URL;
  const stream = `EVENTS_${id}`;
  const subjectPrefix = id;
  const replicas = opts.cluster ?? 1;
  if (opts.cluster) {
    const storeDir = join(tmpdir(), `runway-nats-${id}`);
    natsCluster = await startNatsCluster({ nodes: opts.cluster, storeDir, scope: { stream, subjectPrefix } });
    natsUrl = natsCluster.url;
    const c = natsCluster;
    cleanups.push(async () => {
      await c.stop();
      rmSync(storeDir, { recursive: true, force: true });
    });
  } else if (!natsUrl || opts.ownNats) {
    const storeDir = join(tmpdir(), `runway-nats-${id}`);
    natsServer = await startNatsServer({ storeDir, scope: { stream, subjectPrefix } });
    natsUrl = natsServer.url;
    const s = natsServer;
    cleanups.push(async () => {
      await s.stop();
      rmSync(storeDir, { recursive: true, force: true });
    });
  }
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dir = join(tmpdir(), `runway-pg-${id}`); // tmpdir is world-traversable, as the postgres user needs
    const pg = await startEmbeddedPostgres({ dir, port: await freePort() });
    adminUrl = pg.url;
    cleanups.push(async () => {
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    });
  }
  const admin = adminUrl;
  let databaseUrl: string;
  try {
    databaseUrl = await ensureAppDatabase(admin, {
      database: id,
      role: id,
      password: randomBytes(18).toString('base64url'),
    });
    cleanups.push(async () => {
      await dropDatabase(admin, id);
      await dropRole(admin, id);
    });
  } catch (err) {
    // A DATABASE_URL whose user may not create roles: the database only, as that user.
    if (!(err instanceof Error && 'code' in err && err.code === '42501')) throw err;
    databaseUrl = await ensureDatabase(admin, id);
    cleanups.push(() => dropDatabase(admin, id));
  }
  const nats = await connectNats({ url: natsUrl, name: `test-${id}` });
  const connections: NatsConnection[] = [nats];
  const pools: (() => Promise<void>)[] = [];
  const env: TestEnvironment = {
    id,
    natsUrl,
    nats,
    natsServer,
    natsCluster,
    replicas,
    databaseUrl,
    stream,
    subjectPrefix,
    newStore: (registry, nc) => new EventStore(nc ?? nats, registry, { stream, subjectPrefix, replicas }),
    newDb: <DB>() => {
      const db = createKysely<DB>({ url: databaseUrl, max: 5 });
      // Its untyped twin (what projection runners take); a pool connects only when used.
      const untyped = createKysely<unknown>({ url: databaseUrl, max: 5 });
      untypedTwins.set(db, untyped);
      pools.push(
        () => db.destroy(),
        () => untyped.destroy(),
      );
      return db;
    },
    migrate: async (sets) => {
      const db = createKysely<unknown>({ url: databaseUrl, max: 1 });
      try {
        await migrateToLatest(db, sets);
      } finally {
        await db.destroy();
      }
    },
    childEnv: () => ({
      NATS_URL: natsUrl ?? '',
      DATABASE_URL: databaseUrl,
      RUNWAY_EVENTS_STREAM: stream,
      RUNWAY_SUBJECT_PREFIX: subjectPrefix,
      RUNWAY_NATS_REPLICAS: String(replicas),
      // The tests schedule jobs every few seconds.
      RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS: '1',
    }),
    close: async () => {
      for (const destroy of pools) await destroy().catch(() => undefined);
      for (const nc of connections) await drainNats(nc);
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
    },
  };
  return env;
}

export { EventRegistry };
