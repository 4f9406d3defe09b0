import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { processAlive } from '#libs/server-process';
import { freePort } from '#libs/testing';

// `npm start`'s launcher (scripts/node.mjs → deploy/local main) in its own process group, as a
// terminal runs it in the foreground: Ctrl-C is SIGINT to the whole group (kill(-pgid)).
const root = process.cwd();
const main = join(root, 'dist/deploy/local/src/main.js');
const launcher = join(root, 'scripts/node.mjs');

interface Launch {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function envFor(dir: string): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RUNWAY_DATA_DIR: dir,
    RUNWAY_HTTP_PORT: String(await freePort()),
    RUNWAY_NATS_PORT: String(await freePort()),
    RUNWAY_PG_PORT: String(await freePort()),
    RUNWAY_GRPC_PORT: String(await freePort()),
  };
  delete env.NATS_URL; // the embedded default: its own nats-server and PostgreSQL
  delete env.DATABASE_URL;
  return env;
}

function launch(env: NodeJS.ProcessEnv): Launch {
  const proc = spawn(process.execPath, [launcher, main], {
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, output: () => out, exited };
}

async function until(what: string, cond: () => boolean, l: Launch, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (l.proc.exitCode !== null) throw new Error(`exited before ${what}:\n${l.output()}`);
    if (Date.now() > end) throw new Error(`no ${what} after ${ms} ms:\n${l.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The nats-server and postmaster of the data dir `dir` (their command lines name it). */
function serversOf(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (cmd.some((a) => a.startsWith(dir)) && processAlive(Number(name))) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pids: number[], ms: number): Promise<number[]> {
  const end = Date.now() + ms;
  for (;;) {
    const left = pids.filter(processAlive);
    if (left.length === 0 || Date.now() > end) return left;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const BAD = /timeout|took too long|Connection terminated|unhandled|Error:|\n\s+at /i;

describe('start and stop as an operator expects', () => {
  const dirs: string[] = [];
  const procs: ChildProcess[] = [];
  after(() => {
    for (const p of procs)
      if (p.pid && groupAlive(p.pid))
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'runway-signals-'));
    dirs.push(d);
    return d;
  };

  it('Ctrl-C (SIGINT to the process group) stops everything in ≤ 2 s, cleanly, exit 0', async () => {
    const dir = newDir();
    const env = await envFor(dir);
    for (const round of [1, 2]) {
      const l = launch(env);
      procs.push(l.proc);
      await until('ready', () => l.output().includes('Runway is running at'), l);
      // An operator's Ctrl-C comes once it runs: it answers, and its start has settled.
      assert.equal((await fetch(`http://127.0.0.1:${env.RUNWAY_HTTP_PORT}/api/v1/ping`)).status, 200);
      await new Promise((r) => setTimeout(r, 1_000));
      const servers = serversOf(dir);
      assert.equal(servers.length, 2, `nats-server and postgres of ${dir}: ${servers.join(' ')}`);
      assert.ok(
        servers.every((pid) => pid !== l.proc.pid),
        'the servers are processes of their own',
      );
      const t0 = Date.now();
      process.kill(-l.proc.pid!, 'SIGINT');
      const { code } = await l.exited;
      const ms = Date.now() - t0;
      process.stderr.write(`[signals] round ${round}: Ctrl-C → exit ${code} in ${ms} ms\n`);
      assert.equal(code, 0, l.output());
      assert.ok(ms <= 2_000, `stopped in ${ms} ms:\n${l.output()}`);
      assert.doesNotMatch(l.output().split('Stop with Ctrl-C.')[1] ?? '', BAD);
      assert.deepEqual(await gone(servers, 2_000), [], 'no server left running');
      assert.equal(groupAlive(l.proc.pid!), false, 'nothing left in the process group');
    }
  });

  it('the servers die with the launcher when it is SIGKILLed', async () => {
    const dir = newDir();
    const l = launch(await envFor(dir));
    procs.push(l.proc);
    await until('ready', () => l.output().includes('Runway is running at'), l);
    const servers = serversOf(dir);
    assert.equal(servers.length, 2);
    process.kill(l.proc.pid!, 'SIGKILL');
    await l.exited;
    assert.deepEqual(await gone(servers, 15_000), [], 'nats-server and postgres ended');
    assert.deepEqual(serversOf(dir), []);
  });

  it('a signal at any moment of the start ends cleanly: exit 130 (or 0), no stack trace, nothing left', async () => {
    const dir = newDir();
    const env = await envFor(dir);
    // The first start makes the data dir; then signals at several moments of a start.
    const first = launch(env);
    procs.push(first.proc);
    await until('ready', () => first.output().includes('Runway is running at'), first);
    process.kill(-first.proc.pid!, 'SIGINT');
    assert.equal((await first.exited).code, 0);
    const moments: [string, (out: string) => boolean, number][] = [
      ['at once', () => true, 0],
      ['while nats-server starts', () => true, 700],
      ['after nats-server', (o) => o.includes('nats-server with JetStream'), 0],
      ['after PostgreSQL', (o) => o.includes('embedded PostgreSQL on'), 0],
      ['while the services start', (o) => o.includes('embedded PostgreSQL on'), 1_000],
    ];
    for (const [moment, ready, delay] of moments) {
      const l = launch(env);
      procs.push(l.proc);
      await until(moment, () => ready(l.output()), l);
      await new Promise((r) => setTimeout(r, delay));
      process.kill(-l.proc.pid!, 'SIGINT');
      const { code, signal } = await l.exited;
      // Killed by SIGINT before main installed its handlers (nothing started yet): a shell's 130 too.
      assert.ok(
        code === 130 || code === 0 || (code === null && signal === 'SIGINT'),
        `${moment}: exit ${code} ${signal}:\n${l.output()}`,
      );
      assert.doesNotMatch(l.output(), /Connection terminated|\n\s+at /, moment);
      assert.deepEqual(await gone(serversOf(dir), 5_000), [], `${moment}: no server left`);
      assert.equal(groupAlive(l.proc.pid!), false, `${moment}: nothing left in the group`);
    }
  });
});
