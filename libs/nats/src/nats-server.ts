import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer, Socket } from 'node:net';

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

/** Finds nats-server on PATH (or /usr/sbin, where Debian puts it). */
export function natsServerBinary(): string {
  for (const candidate of [
    'nats-server',
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ]) {
    const r = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  throw new Error('nats-server not found: install it (Debian/Ubuntu: apt-get install nats-server)');
}

export interface NatsServerHandle {
  url: string;
  port: number;
  storeDir: string;
  /** Graceful stop (SIGTERM) and wait for exit. */
  stop: () => Promise<void>;
  /** SIGKILL, no flush. */
  kill: () => Promise<void>;
  /** Starts again on the same port and store directory. */
  restart: () => Promise<void>;
}

/** Starts a real nats-server with JetStream on loopback, storing under `storeDir`. */
export async function startNatsServer(opts: {
  storeDir: string;
  port?: number;
  log?: (line: string) => void;
}): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  const port = opts.port ?? (await freePort());
  mkdirSync(opts.storeDir, { recursive: true });
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn(bin, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', opts.storeDir, '-m', '0'], {
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
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir: opts.storeDir,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    restart: async () => {
      await end('SIGTERM');
      await launch();
    },
  };
}
