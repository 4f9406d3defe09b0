import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadRunwayPackage, startGrpcServer } from '../../services/gateway/src/grpc/grpc-server.js';
import { createBatchJob, newUser, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';
import { runRunwayCli, runwayCliEnv, runwayCliPath } from '../support/cli.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const LINES = 10;

/** Prints `line i` (every third to stderr) with pauses: about 8 s in all, so "live" holds on a loaded machine. */
const code: Record<string, string> = {
  'live.py': [
    'import sys, time',
    `for i in range(1, ${LINES + 1}):`,
    '    print(f"line {i}", file=sys.stderr if i % 3 == 0 else sys.stdout, flush=True)',
    '    time.sleep(0.8)',
    '',
  ].join('\n'),
  'fail.py': [
    'import sys, time',
    'print("about to fail", flush=True)',
    'time.sleep(1)',
    'print("failing on purpose", file=sys.stderr, flush=True)',
    'sys.exit(3)',
    '',
  ].join('\n'),
  'slow.py': 'import time\nprint("slow start", flush=True)\ntime.sleep(600)\n',
  // A 200 KB line: the worker cuts it into 64 KiB pieces, the CLI must join them again.
  'long.py': 'import sys\nprint("before")\nsys.stdout.write("z" * 200_000 + "\\n")\nprint("after")\n',
};

interface LogEventMsg {
  event?: 'line' | 'end';
  line?: { seq: number; stream: string; ts: number; text: string; part: boolean };
  end?: { line_count: number; sealed: boolean };
}
type ServerStream = (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<LogEventMsg>;

/** Established TCP connections of this process to 127.0.0.1:<port> (client side). */
function openConnectionsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[2]?.endsWith(`:${hexPort}`) && f[3] === '01' && inodes.has(f[9]!)).length;
}

async function eventually(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('run logs clients: runway logs -f / job-run logs and gRPC FollowRunLogs', () => {
  let s: TestStack;
  let ws: string;
  let dir: string;
  let configDir: string;
  let grpcClient: grpc.Client & { FollowRunLogs: ServerStream };
  let newGrpcClient: (port: number) => grpc.Client & { FollowRunLogs: ServerStream };
  const base = () => `/api/v1/workspaces/${ws}`;

  before(async () => {
    s = await startTestStack({ RUNWAY_KILL_GRACE_SECONDS: '1' });
    ws = s.workspaceId;
    await uploadPackage(
      s,
      'deployments',
      Object.entries(code).map(([path, content]) => ({ path, content })),
    );
    await uploadPackage(s, 'configurations', [{ path: 'config.toml', content: 'log_level = "WARNING"\n' }]);
    for (const name of Object.keys(code)) await createBatchJob(s, name);
    dir = mkdtempSync(join(tmpdir(), 'runway-logsws-'));
    configDir = mkdtempSync(join(tmpdir(), 'runway-cfg-'));
    mkdirSync(join(dir, '.dlt'));
    writeFileSync(join(dir, '.dlt/config.toml'), `[runtime]\nworkspace_id = "${ws}"\n`);
    const pkg = loadRunwayPackage();
    newGrpcClient = (port: number) =>
      new pkg.runway.v1.Runway(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as never;
    grpcClient = new pkg.runway.v1.Runway(
      `127.0.0.1:${s.runway.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as never;
  });
  after(async () => {
    grpcClient.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(configDir, { recursive: true, force: true });
    await s.stop();
  });

  const env = () => runwayCliEnv(s, configDir);
  const runway = (...args: string[]) => runRunwayCli(s, dir, configDir, ...args);
  const createRun = async (name: string) => {
    const r = await s.call('POST', `${base()}/runs`, { script_id_or_name: name, profile: null });
    assert.equal(r.status, 201, r.text);
    return r.json as Json;
  };
  const runStatus = async (id: string) =>
    String(((await s.call('GET', `${base()}/runs/${id}`)).json as Json).status);
  const TERMINAL = ['completed', 'failed', 'cancelled', 'skipped'];

  /** The CLI as a child; `onFirstOut` runs when stdout first shows `marker`. */
  function spawnRunway(args: string[], marker: RegExp, onFirstOut: () => void) {
    const child = spawn(process.execPath, [runwayCliPath, '--api-url', s.api, ...args], {
      cwd: dir,
      env: env(),
    });
    let out = '';
    let err = '';
    let seen = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!seen && marker.test(out)) {
        seen = true;
        onFirstOut();
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
      child.on('close', (c) => {
        clearTimeout(kill);
        resolve({ code: c, out, err });
      }),
    );
    return { child, done };
  }

  let liveRun = '';

  it('runway logs <script> -f follows a live run to its end, every line in order, exit 0', async () => {
    const created = await createRun('live.py');
    liveRun = String(created.id);
    let statusAtFirstLine: Promise<string> | undefined;
    const { done } = spawnRunway(['logs', 'live.py', '-f'], /line 1\n/, () => {
      statusAtFirstLine = runStatus(liveRun);
    });
    const r = await done;
    assert.equal(r.code, 0, r.out + r.err);
    // stdout and stderr lines of the run all go to stdout, in order, each once.
    assert.deepEqual(
      r.out.split('\n').filter((l) => l.startsWith('line ')),
      Array.from({ length: LINES }, (_, i) => `line ${i + 1}`),
    );
    assert.ok(statusAtFirstLine, 'the first line was printed');
    assert.ok(!TERMINAL.includes(await statusAtFirstLine), 'it was printed while the run was still going');
    assert.match(r.err, /Logs of run #1 of live\.py/);
    assert.match(r.err, /Run status: completed/);
  });

  it('a line over 64 KiB arrives in pieces and is printed whole (text and --json)', async () => {
    await createRun('long.py');
    const { done } = spawnRunway(['logs', 'long.py', '-f'], /after\n/, () => undefined);
    const r = await done;
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.ok(lines.includes('z'.repeat(200_000)), 'the long line whole, on one line');
    assert.ok(lines.indexOf('before') < lines.indexOf('after'));
    const json = spawnRunway(['--json', 'logs', 'long.py', '-f'], /after/, () => undefined);
    const j = await json.done;
    const pieces = j.out
      .split('\n')
      .filter((l) => l.includes('"zzz'))
      .map((l) => JSON.parse(l) as { text: string; part?: boolean });
    assert.equal(pieces.length, 4);
    assert.deepEqual(
      pieces.map((p) => p.part === true),
      [true, true, true, false],
    );
    assert.equal(pieces.map((p) => p.text).join(''), 'z'.repeat(200_000));
  });

  it('--json -f prints one JSON object per line; job-run <script> N logs [-f] prints the log', async () => {
    const j = await runway('--json', 'logs', 'live.py', '1', '-f');
    assert.equal(j.code, 0, j.err);
    const lines = j.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; stream: string; ts: number; text: string });
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i + 1),
    );
    const own = lines.filter((l) => /^line \d+$/.test(l.text));
    assert.equal(own.length, LINES);
    for (const l of own) {
      assert.equal(l.stream, Number(l.text.slice(5)) % 3 === 0 ? 'stderr' : 'stdout');
      assert.equal(typeof l.ts, 'number');
    }
    const plain = await runway('job-run', 'live.py', '1', 'logs');
    assert.equal(plain.code, 0, plain.err);
    assert.match(plain.out, new RegExp(Array.from({ length: LINES }, (_, i) => `line ${i + 1}`).join('\n')));
    const followed = await runway('job-run', 'live.py', 'logs', '-f');
    assert.equal(followed.code, 0, followed.err);
    assert.equal(followed.out.split('\n').filter((l) => l.startsWith('line ')).length, LINES);
  });

  it('a failing run: logs -f prints its lines and exits 1 with a one-line reason', async () => {
    await createRun('fail.py');
    const r = await runway('logs', 'fail.py', '-f');
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /about to fail\nfailing on purpose\n/);
    assert.match(
      r.err.trim().split('\n').at(-1)!,
      /^runway: run #1 of fail\.py failed: exit_code, exit code 3/,
    );
    const viaJobRun = await runway('job-run', 'fail.py', '1', 'logs', '-f');
    assert.equal(viaJobRun.code, 1);
  });

  it('unknown jobs and run numbers exit 1 with a clear message', async () => {
    for (const args of [
      ['logs', 'nope.py', '-f'],
      ['job-run', 'nope.py', 'logs'],
      ['job-run', 'nope.py', '2', 'logs', '-f'],
    ]) {
      const r = await runway(...args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.out}${r.err}`);
      assert.match(r.err, /script nope\.py not found \(HTTP 404\)/);
    }
    const n = await runway('logs', 'live.py', '9', '-f');
    assert.equal(n.code, 1);
    assert.match(n.err, /run #9 of script live\.py not found \(latest is #1\)/);
    const bad = await runway('logs', 'live.py', 'x');
    assert.equal(bad.code, 2);
  });

  it('gRPC FollowRunLogs streams a live run to its end, then resumes from a sequence number', async () => {
    const created = await createRun('live.py');
    const runId = String(created.id);
    const follow = (req: object, token: string | null = s.adminToken) => {
      const md = new grpc.Metadata();
      if (token) md.set('authorization', `Bearer ${token}`);
      const call = grpcClient.FollowRunLogs({ workspace_id: ws, run_id: runId, ...req }, md);
      const events: LogEventMsg[] = [];
      let statusAtFirst: Promise<string> | undefined;
      const done = new Promise<{ events: LogEventMsg[]; err: grpc.ServiceError | null }>((resolve) => {
        call.on('data', (e: LogEventMsg) => {
          statusAtFirst ??= runStatus(runId);
          events.push(e);
        });
        call.on('error', (err: grpc.ServiceError) => resolve({ events, err }));
        call.on('end', () => resolve({ events, err: null }));
      });
      return { done, statusAtFirst: () => statusAtFirst };
    };
    const live = follow({});
    const { events, err } = await live.done;
    assert.equal(err, null, err?.details);
    const lines = events.filter((e) => e.event === 'line').map((e) => e.line!);
    const end = events.at(-1)!;
    assert.equal(end.event, 'end');
    assert.deepEqual(end.end, { line_count: lines.length, sealed: true });
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i + 1),
    );
    assert.deepEqual(
      lines.filter((l) => /^line \d+$/.test(l.text)).map((l) => [l.text, l.stream]),
      Array.from({ length: LINES }, (_, i) => [`line ${i + 1}`, (i + 1) % 3 === 0 ? 'stderr' : 'stdout']),
    );
    assert.ok(lines.every((l) => l.part === false && l.ts > 0));
    assert.ok(!TERMINAL.includes(await live.statusAtFirst()!), 'the first line came while the run went on');

    const resumed = await follow({ from_seq: 4 }).done;
    assert.equal(resumed.err, null);
    const seqs = resumed.events.filter((e) => e.event === 'line').map((e) => e.line!.seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: lines.length - 3 }, (_, i) => i + 4),
    );
    assert.deepEqual(resumed.events.at(-1)!.end, { line_count: lines.length, sealed: true });

    const anon = await follow({}, null).done;
    assert.equal(anon.err?.code, grpc.status.UNAUTHENTICATED);
    const bob = await newUser(s, 'grpc-logs-bob@example.com');
    const other = await follow({ workspace_id: bob.workspaceId }, bob.token).done;
    assert.equal(other.err?.code, grpc.status.NOT_FOUND, other.err?.details);
    const notMember = await follow({}, bob.token).done;
    assert.ok(
      [grpc.status.NOT_FOUND, grpc.status.PERMISSION_DENIED].includes(notMember.err!.code),
      String(notMember.err?.code),
    );
    const unknown = await follow({ run_id: '00000000-0000-4000-8000-000000000000' }).done;
    assert.equal(unknown.err?.code, grpc.status.NOT_FOUND);
    const missing = await follow({ run_id: '' }).done;
    assert.equal(missing.err?.code, grpc.status.INVALID_ARGUMENT);
    const negative = await follow({ from_seq: -1 }).done;
    assert.equal(negative.err?.code, grpc.status.INVALID_ARGUMENT);
  });

  it('a cancelled gRPC follow closes its follow of the LOGS stream', async () => {
    const server = await startGrpcServer({ port: 0, host: '127.0.0.1', app: s.runway.gateway });
    const client = newGrpcClient(server.port);
    const created = await createRun('slow.py');
    const runId = String(created.id);
    const httpPort = Number(new URL(s.url).port);
    // Idle keep-alive connections of earlier calls close within seconds.
    await eventually('no connection to the HTTP port', () => openConnectionsTo(httpPort) === 0);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${s.adminToken}`);
    const call = client.FollowRunLogs({ workspace_id: ws, run_id: runId }, md);
    const first = new Promise<LogEventMsg>((resolve) =>
      call.on('data', (e: LogEventMsg) => {
        if (e.line?.text === 'slow start') resolve(e);
      }),
    );
    const ended = new Promise<grpc.ServiceError | null>((resolve) => {
      call.on('error', resolve);
      call.on('end', () => resolve(null));
    });
    assert.equal((await first).line?.text, 'slow start');
    assert.equal(server.follows(), 1, 'the server follows the run natively');
    assert.equal(openConnectionsTo(httpPort), 0, 'no HTTP hop: the LOGS stream is read in-process');
    call.cancel();
    assert.equal((await ended)?.code, grpc.status.CANCELLED);
    await eventually('the follow to close', () => server.follows() === 0);
    assert.equal(await runStatus(runId), 'running', 'the run itself goes on');
    client.close();
    await server.stop();
    const c = await s.call('POST', `${base()}/runs/${runId}/cancel`);
    assert.ok(c.status === 200 || c.status === 201, c.text);
    await waitForStatus(s, runId, ['cancelled']);
  });

  it('a gRPC server that stops ends its live follows with UNAVAILABLE at once (resume elsewhere)', async () => {
    const server = await startGrpcServer({ port: 0, host: '127.0.0.1', app: s.runway.gateway });
    const client = newGrpcClient(server.port);
    const created = await createRun('slow.py');
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${s.adminToken}`);
    const call = client.FollowRunLogs({ workspace_id: ws, run_id: String(created.id) }, md);
    const first = new Promise<void>((resolve) =>
      call.on('data', (e: LogEventMsg) => e.line?.text === 'slow start' && resolve()),
    );
    const ended = new Promise<grpc.ServiceError | null>((resolve) => {
      call.on('error', resolve);
      call.on('end', () => resolve(null));
    });
    await first;
    await server.stop();
    const err = await ended;
    assert.equal(err?.code, grpc.status.UNAVAILABLE);
    assert.match(err?.details ?? '', /shutting down; resume with from_seq/);
    client.close();
    await s.call('POST', `${base()}/runs/${String(created.id)}/cancel`);
    await waitForStatus(s, String(created.id), ['cancelled']);
  });

  it('Ctrl-C ends runway logs -f cleanly (exit 130)', async () => {
    const created = await createRun('slow.py');
    const { child, done } = spawnRunway(['logs', 'slow.py', '-f'], /slow start\n/, () =>
      child.kill('SIGINT'),
    );
    const r = await done;
    assert.equal(r.code, 130, r.out + r.err);
    assert.match(r.err, /runway: interrupted/);
    assert.doesNotMatch(r.err, /at .*\.js/, 'no stack trace');
    await s.call('POST', `${base()}/runs/${String(created.id)}/cancel`);
    const cancelled = await runway('logs', 'slow.py', '-f');
    assert.equal(cancelled.code, 1, cancelled.out + cancelled.err);
    assert.match(cancelled.out, /slow start/);
    assert.match(cancelled.err, /run #\d+ of slow\.py was cancelled/);
  });
});
