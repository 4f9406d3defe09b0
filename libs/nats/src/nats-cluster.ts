import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  ensureNatsCredentials,
  ensureNatsRouteCredential,
  natsUrlWithCredentials,
  type NatsCredentials,
  type NatsScope,
  type NatsUser,
} from './auth.js';
import { freePort, startNatsServer, type NatsServerHandle } from './nats-server.js';

/** A node of a cluster: a NatsServerHandle whose restart waits until the node is healthy again. */
export interface NatsClusterNode extends NatsServerHandle {
  /** `server_name`: n1, n2, … */
  name: string;
  /** Port of the node's route listener. */
  routePort: number;
  /** Port of the node's monitoring endpoints (`http://127.0.0.1:<port>/healthz`). */
  monitorPort: number;
  /** Resolves once the node answers /healthz with 200 (JetStream current with the meta leader). */
  waitHealthy: (timeoutMs?: number) => Promise<void>;
}

export interface NatsClusterHandle {
  /**
   * Every node's URL of the `runway` user, comma-separated (the form NATS_URL takes for a cluster):
   * keep it out of logs (redactUrl).
   */
  url: string;
  /** The same list without credentials (an anonymous client: refused). */
  anonymousUrl: string;
  /** One URL per node, of the `runway` user. */
  urls: string[];
  /** Every node's URL of one user, comma-separated. */
  urlFor: (user: NatsUser) => string;
  credentials: NatsCredentials;
  credentialsDir: string;
  nodes: NatsClusterNode[];
  /** Graceful stop of every node. */
  stop: () => Promise<void>;
  /** SIGKILL of every node. */
  kill: () => Promise<void>;
  /** Starts every node again (same ports and store dirs; a running one is stopped first), waits until all are healthy and every stream has a leader. */
  restart: () => Promise<void>;
  /** Resolves once every node answers /healthz with 200. */
  waitHealthy: (timeoutMs?: number) => Promise<void>;
}

const HOST = '127.0.0.1';

/** Polls a node's /healthz (JetStream meta leader known, its streams and consumers current) until 200. */
export async function waitForNatsHealthz(monitorPort: number, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    try {
      const res = await fetch(`http://${HOST}:${monitorPort}/healthz`, {
        signal: AbortSignal.timeout(2_000),
      });
      last = `${res.status} ${await res.text()}`;
      if (res.ok) return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nats-server on monitor port ${monitorPort} not healthy after ${timeoutMs} ms: ${last}`);
}

/**
 * Waits until JetStream answers on the cluster and every stream and durable consumer of the account
 * has an elected leader: /healthz turns 200 before the streams' own elections end, and a stream without a leader
 * answers no request (a client's first STREAM.INFO after a full restart timed out at 5 s).
 */
export async function waitForStreamLeaders(
  servers: string[],
  auth: { user: string; pass: string },
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  const nc = await connect({ servers, ...auth, timeout: 5_000, reconnect: true, maxReconnectAttempts: -1 });
  let last = '';
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    while (Date.now() < until) {
      try {
        const names: string[] = [];
        for await (const n of jsm.streams.names()) names.push(n);
        const infos = await Promise.all(names.map((n) => jsm.streams.info(n)));
        const leaderless = infos.filter((i) => i.cluster && !i.cluster.leader).map((i) => i.config.name);
        if (leaderless.length === 0) {
          // Durable consumers elect their own leaders after their stream's: a consumer without one
          // answers no CONSUMER.INFO/CREATE either (a service's first one timed out after a restart).
          for (const n of names)
            for await (const c of jsm.consumers.list(n))
              if (c.cluster && !c.cluster.leader) leaderless.push(`${n}/${c.name}`);
        }
        if (leaderless.length === 0) return;
        last = `no leader yet: ${leaderless.join(', ')}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await nc.close();
  }
  throw new Error(`JetStream streams not ready after ${timeoutMs} ms: ${last}`);
}

/**
 * Starts `nodes` real nats-servers clustered on loopback (routes authenticated with their own
 * password), each with JetStream in its own store dir (`<storeDir>/n1`, …), the same users and
 * permissions as startNatsServer (passwords shared under `credentialsDir`, default
 * `<storeDir>/credentials`), and waits until every node is healthy (a JetStream meta leader is
 * elected). Streams created on it may have up to `nodes` replicas.
 *
 * Ports are chosen once: a node restarted (or the whole cluster) comes back on the same ports and
 * store dir. A cluster started again later on the same `storeDir` needs `ports` to be the same
 * too (routes name them), which `npm start -- --cluster` keeps in its data dir.
 */
export async function startNatsCluster(opts: {
  nodes: number;
  storeDir: string;
  credentialsDir?: string;
  scope?: NatsScope;
  log?: (line: string) => void;
  /** Client, route and monitoring ports per node (default: free ports). */
  ports?: readonly { client: number; route: number; monitor: number }[];
  /** Cluster name (default `runway`). */
  name?: string;
  timeoutMs?: number;
}): Promise<NatsClusterHandle> {
  const count = opts.nodes;
  if (!Number.isInteger(count) || count < 1 || count > 7)
    throw new Error(`a cluster has 1 to 7 nodes, not ${count}`);
  if (opts.ports && opts.ports.length !== count)
    throw new Error(`${opts.ports.length} port sets for ${count} nodes`);
  const credentialsDir = opts.credentialsDir ?? join(opts.storeDir, 'credentials');
  const credentials = ensureNatsCredentials(credentialsDir);
  const routePassword = ensureNatsRouteCredential(credentialsDir);
  const ports =
    opts.ports ??
    (await Promise.all(
      Array.from({ length: count }, async () => ({
        client: await freePort(),
        route: await freePort(),
        monitor: await freePort(),
      })),
    ));
  const routePorts = ports.map((p) => p.route);
  const streamsReady = () =>
    waitForStreamLeaders(
      ports.map((p) => `nats://${HOST}:${p.client}`),
      { user: 'runway', pass: credentials.runway },
      timeoutMs,
    );
  const name = opts.name ?? 'runway';
  const timeoutMs = opts.timeoutMs ?? 30_000;
  // Every node only waits for its client port here: none is healthy before a quorum runs.
  const nodes: NatsClusterNode[] = [];
  const raw: NatsServerHandle[] = [];
  try {
    for (const [i, p] of ports.entries()) {
      const serverName = `n${i + 1}`;
      const handle = await startNatsServer({
        storeDir: join(opts.storeDir, serverName),
        port: p.client,
        credentialsDir,
        scope: opts.scope,
        log: opts.log ? (line) => opts.log?.(`[${serverName}] ${line}`) : undefined,
        cluster: { name, serverName, port: p.route, routePorts, routePassword },
        monitorPort: p.monitor,
      });
      raw.push(handle);
      const waitHealthy = (t = timeoutMs) => waitForNatsHealthz(p.monitor, t);
      nodes.push({
        ...handle,
        name: serverName,
        routePort: p.route,
        monitorPort: p.monitor,
        waitHealthy,
        restart: async () => {
          await handle.restart();
          await waitHealthy();
          await streamsReady();
        },
      });
    }
    await Promise.all(nodes.map((n) => n.waitHealthy()));
    await streamsReady();
  } catch (err) {
    await Promise.all(raw.map((n) => n.kill()));
    throw err;
  }
  const list = (user: NatsUser) =>
    ports.map((p) => natsUrlWithCredentials(HOST, p.client, user, credentials[user]));
  const waitHealthy = async (t = timeoutMs) => {
    await Promise.all(nodes.map((n) => n.waitHealthy(t)));
  };
  return {
    url: list('runway').join(','),
    anonymousUrl: ports.map((p) => `nats://${HOST}:${p.client}`).join(','),
    urls: list('runway'),
    urlFor: (user) => list(user).join(','),
    credentials,
    credentialsDir,
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
    kill: async () => {
      await Promise.all(nodes.map((n) => n.kill()));
    },
    restart: async () => {
      // The nodes come up together (a node alone has no quorum, so none is healthy before the others run).
      await Promise.all(raw.map((n) => n.stop()));
      for (const n of raw) await n.restart();
      await waitHealthy();
      await streamsReady();
    },
    waitHealthy,
  };
}
