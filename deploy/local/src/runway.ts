import 'reflect-metadata';
import { Logger, type INestApplication, type INestMicroservice } from '@nestjs/common';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { HostedService, RunwayConfig } from '#libs/config';
import {
  connectsAsSuperuser,
  ensureAppDatabase,
  startEmbeddedPostgres,
  type EmbeddedPostgresHandle,
} from '#libs/database';
import { EventStore } from '#libs/eventstore';
import { connectNats, drainNats, portIsFree, startEmbeddedNats, type EmbeddedNats } from '#libs/nats';
import { configureLogging, readiness } from '#libs/observability';
import { ensureSecretFile } from '#libs/secrets';
import { startNestMicroservice, startServiceHost, type RunningService } from '#libs/service-host';
import { createGatewayHttp } from '../../../services/gateway/src/app.js';
import { startGrpcServer } from '../../../services/gateway/src/grpc/grpc-server.js';
import { ensureFirstAdmin, type FirstAdmin } from '../../../services/gateway/src/bootstrap/first-admin.js';
import { gatewayService } from '../../../services/gateway/src/gateway.service.js';
import { ConfigurationsModule } from '../../../services/configurations/src/configurations.module.js';
import { configurationsService } from '../../../services/configurations/src/configurations.service.js';
import { DeploymentsModule } from '../../../services/deployments/src/deployments.module.js';
import { deploymentsService } from '../../../services/deployments/src/deployments.service.js';
import { ExecutionModule } from '../../../services/execution/src/execution.module.js';
import { executionService } from '../../../services/execution/src/execution.service.js';
import { executionRegistry } from '../../../services/execution/src/run/run.events.js';
import { startWorkers } from '../../../services/execution/src/worker/start-worker.js';
import { AlertingModule } from '../../../services/alerting/src/alerting.module.js';
import { alertingService } from '../../../services/alerting/src/alerting.service.js';
import { LogsModule } from '../../../services/logs/src/logs.module.js';
import { logsService } from '../../../services/logs/src/logs.service.js';
import { SchedulingModule } from '../../../services/scheduling/src/scheduling.module.js';
import { schedulingService } from '../../../services/scheduling/src/scheduling.service.js';

export interface RunningRunway {
  url: string;
  grpcPort: number;
  /** The gateway's application (its application services answer REST and gRPC). */
  gateway: INestApplication;
  natsUrl: string;
  databaseUrl: string;
  admin: FirstAdmin;
  stop: () => Promise<void>;
}

/**
 * The embedded default: nats-server and PostgreSQL under the data dir (unless NATS_URL / DATABASE_URL
 * are set), every service and its projections in this process, the gateway on RUNWAY_HTTP_PORT.
 */
export async function startRunway(
  config: RunwayConfig,
  log = new Logger('runway'),
  opts: { signal?: AbortSignal } = {},
): Promise<RunningRunway> {
  configureLogging(); // RUNWAY_LOG_FORMAT=json: every line of the process as JSON
  // Aborted (a signal while starting): what is up is stopped in reverse order, the servers last.
  const step = () => opts.signal?.throwIfAborted();
  mkdirSync(config.dataDir, { recursive: true, mode: 0o755 });
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const s of stops.reverse()) await s().catch((e: unknown) => log.error(String(e)));
    stops.length = 0;
  };
  // The servers (nats-server, PostgreSQL) stop last, together, once every service has stopped.
  const serverStops: (() => Promise<void>)[] = [];
  stops.push(async () => {
    for (const r of await Promise.allSettled(serverStops.map((s) => s())))
      if (r.status === 'rejected') log.error(String(r.reason));
  });
  try {
    step();
    let natsUrl = config.nats.url;
    let natsServer: EmbeddedNats | undefined;
    if (!natsUrl) {
      // One nats-server, or RUNWAY_NATS_CLUSTER (--cluster N) clustered on loopback with R=N.
      natsServer = await startEmbeddedNats({
        natsDir: join(config.dataDir, 'nats'),
        port: config.nats.port,
        nodes: config.nats.clusterNodes,
        scope: { stream: config.events.stream, subjectPrefix: config.events.subjectPrefix },
      });
      natsUrl = natsServer.url;
      const s = natsServer;
      serverStops.push(() => s.stop());
      log.log(
        natsServer.nodes > 1
          ? `${natsServer.nodes} nats-servers with JetStream clustered on ${natsServer.anonymousUrl}, ` +
              `${config.nats.replicas} replicas of every stream (authentication on; credentials in ${natsServer.credentialsDir})`
          : `nats-server with JetStream on ${natsServer.anonymousUrl} (authentication on; credentials in ${natsServer.credentialsDir})`,
      );
    }
    step();
    let adminDbUrl = config.database.url;
    let pg: EmbeddedPostgresHandle | undefined;
    let databaseUrl: string;
    if (!adminDbUrl) {
      if (!(await portIsFree(config.database.port))) {
        throw new Error(
          `RUNWAY_PG_PORT ${config.database.port} is already in use: choose another port or set DATABASE_URL`,
        );
      }
      pg = await startEmbeddedPostgres({ dir: join(config.dataDir, 'pg'), port: config.database.port });
      adminDbUrl = pg.url;
      const p = pg;
      serverStops.push(() => p.stop());
      step();
      // Runway connects as `runway`, owner of its database and not a superuser.
      databaseUrl = await ensureAppDatabase(adminDbUrl, {
        database: 'runway',
        role: 'runway',
        password: ensureSecretFile(join(pg.credentialsDir, 'runway')),
      });
      log.log(
        `embedded PostgreSQL on 127.0.0.1:${config.database.port} (credentials in ${pg.credentialsDir})`,
      );
    } else {
      databaseUrl = adminDbUrl;
      if (await connectsAsSuperuser(databaseUrl))
        log.warn(
          'DATABASE_URL connects as a superuser: give Runway a role that owns its database and is not one',
        );
    }
    step();
    if (!(await portIsFree(config.http.port)))
      throw new Error(`RUNWAY_HTTP_PORT ${config.http.port} is already in use`);
    if (!(await portIsFree(config.grpc.port)))
      throw new Error(`RUNWAY_GRPC_PORT ${config.grpc.port} is already in use`);

    const services: RunningService[] = [];
    const micro: INestMicroservice[] = [];
    const gateway = await startServiceHost(gatewayService, config, databaseUrl, natsUrl);
    services.push(gateway);
    const others = [
      [deploymentsService, DeploymentsModule],
      [configurationsService, ConfigurationsModule],
      [schedulingService, SchedulingModule],
      [executionService, ExecutionModule],
      [logsService, LogsModule],
      [alertingService, AlertingModule],
    ] as const;
    for (const [def, mod] of others.filter(([d]) => config.services.includes(d.name as HostedService))) {
      step();
      const svc = await startServiceHost(def, config, databaseUrl, natsUrl);
      services.push(svc);
      micro.push(await startNestMicroservice(mod.forRoot(svc.ctx), natsUrl, def.name, config));
    }
    stops.push(async () => {
      for (const s of services.reverse()) await s.stop();
    });
    stops.push(async () => {
      for (const m of micro) await m.close();
    });
    // The embedded worker(s) (RUNWAY_EMBEDDED_WORKERS, default 1); more run as services/execution worker-main.
    // On our own nats-server they connect as the `worker` user, with only a worker's permissions.
    const execution = services.find((s) => s.name === 'execution')?.ctx;
    if (execution && config.worker.embedded > 0) {
      if (natsServer) {
        const nats = await connectNats({ url: natsServer.urlFor('worker'), name: 'runway-worker' });
        stops.push(() => drainNats(nats));
        const store = new EventStore(nats, executionRegistry(), {
          stream: config.events.stream,
          subjectPrefix: config.events.subjectPrefix,
          replicas: config.nats.replicas,
        });
        const workers = await startWorkers({ nats, store, db: execution.db, config }, config.worker.embedded);
        stops.push(() => workers.stop());
      } else {
        const workers = await startWorkers(execution, config.worker.embedded);
        stops.push(() => workers.stop());
      }
    }
    step();
    readiness.require('first-admin', 'the first admin token is not written yet');
    const http: INestApplication = await createGatewayHttp(gateway, natsUrl, {
      devAutoApprove: config.devAutoApprove,
      publicUrl: config.publicUrl,
    });
    await http.listen(config.http.port, config.http.host);
    stops.push(() => http.close());
    const grpcServer = await startGrpcServer({
      port: config.grpc.port,
      host: config.http.host,
      app: http,
      maxMessageBytes: config.grpc.maxMessageBytes,
    });
    stops.push(() => grpcServer.stop());
    step();
    const admin = await ensureFirstAdmin(http, gateway);
    step();
    readiness.satisfy('first-admin');
    // What the first start and the migrations wrote is flushed now, not by the stop's checkpoint.
    // Best effort: a stop during it ends it, and the stop checkpoints anyway.
    if (pg) pg.checkpoint().catch(() => undefined);
    const url = config.publicUrl;
    return { url, grpcPort: grpcServer.port, gateway: http, natsUrl, databaseUrl, admin, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
