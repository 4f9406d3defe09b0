import { Logger } from '@nestjs/common';
import type { Kysely } from 'kysely';
import {
  createKysely,
  databaseUnreachable,
  migrateToLatest,
  withTables,
  type MigrationSet,
} from '#libs/database';
import type { RunwayConfig } from '#libs/config';
import { Subjects, integrationRegistry, type ServiceName } from '#libs/contracts';
import { EventStore, type EventRegistry } from '#libs/eventstore';
import { connectNats, drainNats, type NatsConnection } from '#libs/nats';
import { configureLogging, readiness, startTracing } from '#libs/observability';
import {
  CheckpointWatcher,
  projectionMigrations,
  ProjectionLocks,
  ProjectionRunner,
  rebuildProjection,
  type CheckpointTable,
  type RunnableProjection,
} from '#libs/projections';
import { subjectFor, type ServiceContext } from './context.js';
import type { HealthReport } from './health-http.js';
import { logLevels } from './microservice.js';

export interface ServiceDefinition {
  name: ServiceName;
  migrations: readonly MigrationSet[];
  /** Private events of the service, registered on top of the integration events. */
  register?: (registry: EventRegistry) => void;
  projections: readonly RunnableProjection[];
  /**
   * Runs before the service's migrations: moves data a migration is about to drop to where it
   * lives now (e.g. out of PostgreSQL into JetStream). Must be idempotent.
   */
  beforeMigrations?: (deps: {
    db: Kysely<unknown>;
    nats: NatsConnection;
    config: RunwayConfig;
    log: (message: string) => void;
  }) => Promise<void>;
}

export interface RunningService {
  name: ServiceName;
  ctx: ServiceContext;
  runners: ProjectionRunner[];
  startedAt: Date;
  /** What a standalone process's GET /healthz answers: 'ok' while its NATS connection is open. */
  health: () => HealthReport;
  stop: () => Promise<void>;
}

/** Service hosts started in this process (each its own readiness conditions). */
let hosted = 0;

/**
 * Starts the infrastructure side of a service: NATS, event store, migrations, projections,
 * and its health and projection-rebuild responders. The Nest side runs on top of the context.
 */
export async function startServiceHost(
  def: ServiceDefinition,
  config: RunwayConfig,
  databaseUrl: string,
  natsUrl: string,
): Promise<RunningService> {
  configureLogging(logLevels(config));
  startTracing();
  const logger = new Logger(def.name);
  // Not ready until its migrations ran and its projections started (GET /api/v1/ready, /readyz).
  const starting = `service:${def.name}:${++hosted}`;
  readiness.require(starting, `${def.name}: starting (migrations, projections)`);
  const nats: NatsConnection = await connectNats({
    url: natsUrl,
    auth: config.nats.auth,
    name: `runway-${def.name}`,
  });
  const registry = integrationRegistry();
  def.register?.(registry);
  const store = new EventStore(nats, registry, {
    stream: config.events.stream,
    subjectPrefix: config.events.subjectPrefix,
    replicas: config.nats.replicas,
  });
  await store.ensureStream();
  const db = createKysely<unknown>({ url: databaseUrl, max: 10 });
  await def.beforeMigrations?.({ db, nats, config, log: (m) => logger.log(m) });
  await migrateToLatest(db, [projectionMigrations, ...def.migrations]);
  const runners: ProjectionRunner[] = [];
  const checkpoints = new CheckpointWatcher(nats, withTables<CheckpointTable>(db), store.prefix);
  const ctx: ServiceContext = {
    config,
    nats,
    store,
    db,
    waitForProjection: (name, seq, timeoutMs) => checkpoints.waitFor(name, seq, timeoutMs),
    waitForProjections: async (seq, timeoutMs = 10_000) => {
      await Promise.all(runners.map((r) => r.waitFor(seq, timeoutMs)));
    },
  };
  const halting = new Set(config.projections.haltOnError);
  // One active replica per projection across the service's processes (the others stand by).
  const locks = new ProjectionLocks(databaseUrl, (err) =>
    logger.warn(`projection leadership: ${err instanceof Error ? err.message : String(err)}`),
  );
  const made = def.projections.map(
    (p) =>
      new ProjectionRunner(store, db, p, {
        ...(halting.has('*') || halting.has(p.name) ? { onFailure: 'halt' as const } : {}),
        locks,
        onError: (err) =>
          logger.warn(`projection ${p.name}: ${err instanceof Error ? err.message : String(err)}`),
        onDeadLetter: (l) =>
          logger.error(
            `projection ${p.name} ${l.halted ? 'halted at' : 'passed over'} commit ${l.seq} (${l.subject}): ${l.error}` +
              ' (runway admin projections dead-letters)',
          ),
      }),
  );
  runners.push(...made);
  for (const r of runners) await r.start();
  const removeChecks = [
    readiness.addCheck(`nats:${starting}`, () =>
      Promise.resolve(nats.isClosed() ? `${def.name}: NATS connection closed` : undefined),
    ),
    readiness.addCheck(`database:${starting}`, () => databaseUnreachable(db)),
  ];
  readiness.satisfy(starting);
  const startedAt = new Date();
  // What a standalone process's GET /healthz answers (RUNWAY_HEALTH_PORT).
  const health = (): HealthReport => ({
    service: def.name,
    status: nats.isClosed() ? 'down' : 'ok',
    startedAt: startedAt.toISOString(),
  });
  const subs = [
    nats.subscribe(subjectFor(ctx, Subjects.health(def.name)), {
      callback: (_err, msg) => {
        msg.respond(
          JSON.stringify({
            service: def.name,
            status: nats.isClosed() ? 'down' : 'ok',
            startedAt: startedAt.toISOString(),
            projections: runners.map((r) => ({
              name: r.projection.name,
              checkpoint: r.position,
              active: r.active,
            })),
          }),
        );
      },
    }),
    ...runners.map((r) =>
      nats.subscribe(subjectFor(ctx, Subjects.projectionRebuild(r.projection.name)), {
        queue: `rebuild-${r.projection.name}`,
        callback: (_err, msg) => {
          logger.log(`rebuilding projection ${r.projection.name}`);
          rebuildProjection(store, db, r.projection, {
            onFailure: r.policy,
          })
            .then((res) => msg.respond(JSON.stringify({ ok: true, ...res })))
            .catch((err: unknown) =>
              msg.respond(
                JSON.stringify({ ok: false, error: err instanceof Error ? err.message : String(err) }),
              ),
            );
        },
      }),
    ),
  ];
  return {
    name: def.name,
    ctx,
    runners,
    startedAt,
    health,
    stop: async () => {
      readiness.require(starting, `${def.name}: stopping`);
      for (const remove of removeChecks) remove();
      for (const s of subs) s.unsubscribe();
      await Promise.all(runners.map((r) => r.stop()));
      await locks.close();
      await db.destroy();
      await drainNats(nats);
      readiness.satisfy(starting); // stopped: no longer a part of this process's readiness
    },
  };
}
