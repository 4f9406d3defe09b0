import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '#libs/config';
import { createKysely, databaseUnreachable, migrateToLatest } from '#libs/database';
import { EventStore } from '#libs/eventstore';
import { connectNats, drainNats } from '#libs/nats';
import { projectionMigrations } from '#libs/projections';
import { configureLogging, readiness, startTracing } from '#libs/observability';
import { logLevels, startProbeListeners } from '#libs/service-host';
import { executionMigrations } from './migrations/index.js';
import { executionRegistry } from './run/run.events.js';
import { startWorkers } from './worker/start-worker.js';

// A worker as its own process: `node dist/services/execution/src/worker-main.js` with NATS_URL and
// DATABASE_URL of a running Runway (and the same RUNWAY_MASTER_KEY / data dir for secrets).
const config = loadConfigOrExit();
if (!config.nats.url || !config.database.url) {
  process.stderr.write('runway worker: NATS_URL and DATABASE_URL must be set\n');
  process.exit(2);
}
configureLogging(logLevels(config));
startTracing();
Logger.overrideLogger(logLevels(config));
const nats = await connectNats({ url: config.nats.url, auth: config.nats.auth, name: 'runway-worker' });
const store = new EventStore(nats, executionRegistry(), {
  stream: config.events.stream,
  subjectPrefix: config.events.subjectPrefix,
  replicas: config.nats.replicas,
});
await store.ensureStream();
const db = createKysely<unknown>({ url: config.database.url, max: 5 });
await migrateToLatest(db, [projectionMigrations, executionMigrations]);
const running = await startWorkers({ nats, store, db, config }, 1, { reaper: true });
// GET /readyz: 503 with the reason while NATS or PostgreSQL cannot be reached.
readiness.addCheck('nats', () => Promise.resolve(nats.isClosed() ? 'NATS connection closed' : undefined));
readiness.addCheck('database', () => databaseUnreachable(db));
const startedAt = new Date().toISOString();
const probes = await startProbeListeners(config.healthPort, config.http.host, () => ({
  service: 'worker',
  status: nats.isClosed() ? 'down' : 'ok',
  worker: running.workers[0]!.id,
  startedAt,
}));
process.stdout.write(
  `runway worker ${running.workers[0]!.id} ready (pid ${process.pid}, ${config.worker.slots} slots)\n`,
);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  for (const p of probes) await p.close();
  await running.stop();
  await db.destroy();
  await drainNats(nats);
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
