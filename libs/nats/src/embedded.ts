import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { NatsCredentials, NatsScope, NatsUser } from './auth.js';
import { startNatsCluster } from './nats-cluster.js';
import { freePort, startNatsServer, waitForPort } from './nats-server.js';

/**
 * The NATS of the embedded default (`npm start` without NATS_URL) under `<dataDir>/nats`:
 * - one server (default): store `<dataDir>/nats`, client port RUNWAY_NATS_PORT;
 * - a cluster (`--cluster N`, RUNWAY_NATS_CLUSTER=N): nodes `<dataDir>/nats/cluster/n1…nN`, client
 *   ports RUNWAY_NATS_PORT … +N-1, recorded in `<dataDir>/nats/cluster.json` so the CLI finds them.
 * Both keep the users' passwords in `<dataDir>/nats/credentials`.
 */
export interface EmbeddedNats {
  /** The `runway` user's URL (a comma-separated list for a cluster): keep it out of logs. */
  url: string;
  anonymousUrl: string;
  urlFor: (user: NatsUser) => string;
  credentials: NatsCredentials;
  credentialsDir: string;
  /** 1, or the cluster's node count. */
  nodes: number;
  stop: () => Promise<void>;
}

const clusterFileSchema = z.object({
  nodes: z.number().int().min(1).max(7),
  clientPorts: z.array(z.number().int().min(1).max(65535)).min(1),
});
export type EmbeddedClusterFile = z.infer<typeof clusterFileSchema>;

/** `<natsDir>/cluster.json` of an embedded cluster, validated; undefined for a single server's data dir. */
export function readEmbeddedCluster(natsDir: string): EmbeddedClusterFile | undefined {
  const file = join(natsDir, 'cluster.json');
  if (!existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not JSON (${err instanceof Error ? err.message : String(err)})`, {
      cause: err,
    });
  }
  const parsed = clusterFileSchema.safeParse(raw);
  if (!parsed.success || parsed.data.clientPorts.length !== parsed.data.nodes)
    throw new Error(`${file}: not an embedded cluster description (nodes, clientPorts)`);
  return parsed.data;
}

/** True when nothing listens on 127.0.0.1:`port`. */
export async function portIsFree(port: number): Promise<boolean> {
  try {
    await waitForPort(port, 1);
    return false;
  } catch {
    return true;
  }
}

/**
 * Starts the embedded NATS on `natsDir` (see EmbeddedNats). Refuses a node count other than the
 * one the data dir was made with (its streams live on those nodes), and ports in use.
 */
export async function startEmbeddedNats(opts: {
  natsDir: string;
  /** RUNWAY_NATS_PORT: the (first) client port. */
  port: number;
  /** 1, 3 or 5. */
  nodes: number;
  scope?: NatsScope;
  log?: (line: string) => void;
}): Promise<EmbeddedNats> {
  const recorded = readEmbeddedCluster(opts.natsDir);
  const credentialsDir = join(opts.natsDir, 'credentials');
  const how = (n: number) => (n === 1 ? 'one nats-server' : `a ${n}-node cluster (--cluster ${n})`);
  if (recorded && recorded.nodes !== opts.nodes)
    throw new Error(
      `the data dir ${opts.natsDir} holds the streams of ${how(recorded.nodes)}: start it the same way ` +
        `(RUNWAY_NATS_CLUSTER=${recorded.nodes}), or move them with \`runway admin backup\` / \`restore\``,
    );
  if (!recorded && opts.nodes > 1 && existsSync(join(opts.natsDir, 'jetstream')))
    throw new Error(
      `the data dir ${opts.natsDir} holds the streams of one nats-server: start it without --cluster, ` +
        'or move them to a new data dir with `runway admin backup` / `restore`',
    );
  if (opts.nodes === 1) {
    if (!(await portIsFree(opts.port)))
      throw new Error(`RUNWAY_NATS_PORT ${opts.port} is already in use: choose another port or set NATS_URL`);
    const s = await startNatsServer({
      storeDir: opts.natsDir,
      port: opts.port,
      scope: opts.scope,
      log: opts.log,
    });
    return { ...s, nodes: 1, stop: () => s.stop() };
  }
  const clientPorts = Array.from({ length: opts.nodes }, (_, i) => opts.port + i);
  for (const p of clientPorts)
    if (!(await portIsFree(p)))
      throw new Error(
        `port ${p} is already in use: an embedded ${opts.nodes}-node cluster takes RUNWAY_NATS_PORT ` +
          `(${opts.port}) to ${opts.port + opts.nodes - 1}; choose another RUNWAY_NATS_PORT or set NATS_URL`,
      );
  // Route and monitoring ports are chosen at every start: the nodes always start together.
  const ports = [];
  for (const client of clientPorts)
    ports.push({ client, route: await freePort(), monitor: await freePort() });
  const cluster = await startNatsCluster({
    nodes: opts.nodes,
    storeDir: join(opts.natsDir, 'cluster'),
    credentialsDir,
    scope: opts.scope,
    log: opts.log,
    ports,
  });
  const file: EmbeddedClusterFile = { nodes: opts.nodes, clientPorts };
  writeFileSync(join(opts.natsDir, 'cluster.json'), `${JSON.stringify(file)}\n`, { mode: 0o600 });
  return {
    url: cluster.url,
    anonymousUrl: cluster.anonymousUrl,
    urlFor: cluster.urlFor,
    credentials: cluster.credentials,
    credentialsDir: cluster.credentialsDir,
    nodes: opts.nodes,
    stop: () => cluster.stop(),
  };
}
