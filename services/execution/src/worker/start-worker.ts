import { Logger } from '@nestjs/common';
import type { Kysely } from 'kysely';
import type { RunwayConfig } from '#libs/config';
import { blobBucketName, BlobStore } from '#libs/blobs';
import type { EventStore } from '#libs/eventstore';
import type { NatsConnection } from '#libs/nats';
import { interactiveAppKey, loadMasterKey, runBeaconToken } from '#libs/secrets';
import { executionDb } from '../database.js';
import { RunAggregates } from '../run/run.handler.js';
import { RunLeases } from './leases.js';
import { WorkspaceSlots } from './workspace-slots.js';
import type { RunMaterializer } from './materializer.js';
import { blobDeploymentRequirements, blobDeploymentWriter } from './deployment-files.js';
import { LeaseReaper } from './reaper.js';
import { ConfigurationContentStore } from '#libs/configuration-files';
import { ServiceRunMaterializer, type DeploymentWriter } from './service-materializer.js';
import { Worker } from './worker.js';
import { JetStreamLogSink } from '#libs/run-logs';
import { createExecutor, type RunExecutor } from '../executor/index.js';

export interface WorkerHost {
  nats: NatsConnection;
  store: EventStore;
  db: Kysely<unknown>;
  config: RunwayConfig;
}

export interface RunningWorkers {
  workers: Worker[];
  stop: () => Promise<void>;
}

/** The materializer of a real installation (configurations + deployments services). */
export async function serviceMaterializer(
  host: WorkerHost,
  deployments?: DeploymentWriter,
): Promise<RunMaterializer> {
  const logger = new Logger('worker');
  const masterKey = loadMasterKey({ masterKey: host.config.masterKey, dataDir: host.config.dataDir }, (m) =>
    logger.log(m),
  );
  const deploymentBlobs = await BlobStore.open(host.nats, {
    bucket: blobBucketName(host.config.events.subjectPrefix),
    replicas: host.config.nats.replicas,
  });
  const writer = deployments ?? blobDeploymentWriter(host.store, deploymentBlobs);
  const blobs = await ConfigurationContentStore.open(host.nats, host.config.events.subjectPrefix, {
    replicas: host.config.nats.replicas,
  });
  return new ServiceRunMaterializer(
    { store: host.store, blobs, masterKey },
    writer,
    blobDeploymentRequirements(host.store, deploymentBlobs),
  );
}

/**
 * Starts `count` workers (each with RUNWAY_WORKER_SLOTS slots) on this process's connections,
 * plus, with `reaper`, a lease reaper.
 */
export async function startWorkers(
  host: WorkerHost,
  count: number,
  opts: { materializer?: RunMaterializer; reaper?: boolean; executor?: RunExecutor } = {},
): Promise<RunningWorkers> {
  const leases = await RunLeases.open(
    host.nats,
    host.config.events.subjectPrefix,
    undefined,
    host.config.kvMaxBytes,
    host.config.nats.replicas,
  );
  const perWorkspace = host.config.worker.maxRunsPerWorkspace;
  const workspaceQuota =
    perWorkspace > 0
      ? {
          slots: await WorkspaceSlots.open(
            host.nats,
            host.config.events.subjectPrefix,
            host.config.kvMaxBytes,
            host.config.nats.replicas,
          ),
          limit: perWorkspace,
        }
      : undefined;
  const apps = host.config.worker.interactive;
  const appQuota =
    apps.perWorkspace > 0
      ? {
          slots: await WorkspaceSlots.open(
            host.nats,
            host.config.events.subjectPrefix,
            host.config.kvMaxBytes,
            host.config.nats.replicas,
            'apps',
          ),
          limit: apps.perWorkspace,
        }
      : undefined;
  // Gateways derive the same key of each app's endpoint from the master key (docs/interactive.md).
  const master = loadMasterKey({ masterKey: host.config.masterKey, dataDir: host.config.dataDir });
  const appKey = (runId: string) => interactiveAppKey(master, runId);
  const beaconToken = (runId: string) => runBeaconToken(master, runId);
  const materializer = opts.materializer ?? (await serviceMaterializer(host));
  const outputLogger = new Logger('run-output');
  // Every line to the run's subject in the LOGS stream (owned by the logs service).
  const output = new JetStreamLogSink(host.nats, host.config.events.subjectPrefix, {
    maxQueuedBytes: host.config.logs.queueBytes,
    onError: (e) => outputLogger.warn(`LOGS publish: ${String(e)}`),
  });
  // Refuses to start where the sandbox cannot work (unless RUNWAY_SANDBOX=off).
  const executor = opts.executor ?? createExecutor(host.config.worker);
  const workers: Worker[] = [];
  for (let i = 0; i < count; i++) {
    const w = new Worker(
      {
        nats: host.nats,
        store: host.store,
        leases,
        materializer,
        output,
        executor,
        ...(workspaceQuota ? { workspaceQuota } : {}),
        ...(appQuota ? { appQuota } : {}),
        appKey,
        beaconToken,
      },
      {
        slots: host.config.worker.slots,
        dataDir: host.config.dataDir,
        python: host.config.python,
        runTimeoutSeconds: host.config.worker.runTimeoutSeconds,
        killGraceMs: host.config.worker.killGraceMs,
        logMaxBytes: host.config.worker.logMaxBytes,
        interactive: apps,
        ...(host.config.deps.uv !== undefined ? { uv: host.config.deps.uv } : {}),
        ...(host.config.deps.indexUrl ? { indexUrl: host.config.deps.indexUrl } : {}),
        maxEnvironments: host.config.deps.maxEnvironments,
        maxEnvironmentBytes: host.config.deps.maxBytes,
        depsNetwork: host.config.deps.network,
        depsAllowedHosts: host.config.deps.allowedHosts,
      },
    );
    await w.start();
    workers.push(w);
  }
  let reaper: LeaseReaper | undefined;
  if (opts.reaper) {
    const logger = new Logger('reaper');
    reaper = new LeaseReaper(executionDb(host.db), leases, new RunAggregates(host.store), {
      onError: (err) => logger.warn(`sweep failed: ${String(err)}`),
    });
    reaper.start();
  }
  return {
    workers,
    stop: async () => {
      await reaper?.stop();
      await Promise.all(workers.map((w) => w.stop()));
    },
  };
}
