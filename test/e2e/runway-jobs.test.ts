import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { runRunwayCli, runwayCliEnv, runwayCliPath } from '../support/cli.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const WORKSPACE: Record<string, string> = {
  '.dlt/.workspace': '',
  '.dlt/config.toml': 'log_level = "WARNING"\n',
  '.gitignore': '_storage/\n',
  'hello.py': 'for i in range(3):\n    print(f"hello line {i}", flush=True)\nprint("all done")\n',
  'fail.py': 'import sys\nprint("failing on purpose", file=sys.stderr)\nsys.exit(3)\n',
};

describe('runway launch, job, job-run, cancel and logs', () => {
  let s: TestStack;
  let dir: string;
  let configDir: string;
  before(async () => {
    s = await startTestStack({ RUNWAY_KILL_GRACE_SECONDS: '1' });
    dir = mkdtempSync(join(tmpdir(), 'runway-jobsws-'));
    configDir = mkdtempSync(join(tmpdir(), 'runway-cfg-'));
    for (const [path, content] of Object.entries(WORKSPACE)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(configDir, { recursive: true, force: true });
    await s.stop();
  });

  const runway = (...args: string[]) => runRunwayCli(s, dir, configDir, ...args);

  it('launches a script, shows status changes and its output, and exits 0 on completed', async () => {
    const r = await runway('launch', 'hello.py');
    assert.equal(r.code, 0, r.out + r.err);
    // Notes on stderr, the run's log (data) on stdout.
    assert.match(r.err, /Job hello\.py created or updated, version #1/);
    assert.match(r.err, /Run #1 of hello\.py created/);
    assert.match(r.err, /Run status: (starting|running)/);
    assert.match(r.out, /hello line 0\nhello line 1\nhello line 2\nall done/);
    assert.equal(r.out.split('\n').filter((l) => l === 'hello line 1').length, 1, 'each line printed once');
    assert.match(r.err, /Run status: completed/);
    assert.doesNotMatch(r.out, /Run status|created or updated|Run #1 of/, 'stdout holds only the log');
  });

  it('launch of a failing script exits 1 and says it failed, with the reason', async () => {
    const r = await runway('launch', 'fail.py');
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /failing on purpose/);
    assert.doesNotMatch(r.out, /Run status/);
    assert.match(r.err, /Run status: failed/);
    const last = r.err.trim().split('\n').at(-1)!;
    assert.match(last, /^runway: run #1 of fail\.py failed: exit_code, exit code 3/);
  });

  it('launch -d returns once the run left pending', async () => {
    const r = await runway('--json', 'launch', 'hello.py', '-d');
    assert.equal(r.code, 0, r.out + r.err);
    const j = JSON.parse(r.out) as { number: number; status: string };
    assert.equal(j.number, 2);
    assert.notEqual(j.status, 'pending');
  });

  it('lists and shows jobs', async () => {
    const list = await runway('job', 'list');
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /Name\s+Entry point/);
    assert.match(list.out, /hello\.py/);
    assert.match(list.out, /fail\.py\s.*#1 failed/);
    const json = await runway('--json', 'job', 'list');
    // Besides the workspace's built-in interactive `dashboard` job (docs/interactive.md).
    assert.deepEqual(
      (JSON.parse(json.out) as { name: string }[])
        .map((j) => j.name)
        .filter((n) => n !== 'dashboard')
        .sort(),
      ['fail.py', 'hello.py'],
    );
    const info = await runway('job', 'info', 'hello.py');
    assert.equal(info.code, 0, info.err);
    assert.match(info.out, /hello\.py/);
    writeFileSync(join(dir, 'other.py'), 'print("other")\n');
    const created = await runway(
      'job',
      'create',
      'other.py',
      '--schedule',
      '*/5 * * * *',
      '--description',
      'another one',
    );
    assert.equal(created.code, 0, created.err);
    assert.match(created.out, /\*\/5 \* \* \* \*/);
    const missing = await runway('job', 'create', 'absent.py');
    assert.equal(missing.code, 2);
    assert.match(missing.err, /entry point absent\.py not found/);
  });

  it('lists runs, shows one, prints logs, creates a run', async () => {
    const runs = await runway('job-run', 'list', 'hello.py');
    assert.equal(runs.code, 0, runs.err);
    assert.match(runs.out, /Run #/);
    assert.match(runs.out, /completed/);
    assert.ok(!runs.out.includes('fail.py'));
    const all = await runway('--json', 'job-run', 'list');
    assert.equal((JSON.parse(all.out) as unknown[]).length, 3);
    const one = await runway('job-run', 'info', 'hello.py', '1');
    assert.equal(one.code, 0, one.err);
    assert.match(one.out, /completed/);
    assert.match(one.out, /running/, 'the status timeline');
    const failed = await runway('--json', 'job-run', 'info', 'fail.py');
    const f = JSON.parse(failed.out) as { number: number; status: string; exit_code: number };
    assert.deepEqual([f.number, f.status, f.exit_code], [1, 'failed', 3]);
    const logs = await runway('logs', 'hello.py', '1');
    assert.equal(logs.code, 0, logs.err);
    assert.match(logs.out, /hello line 0\nhello line 1\nhello line 2\nall done\n/);
    const created = await runway('--json', 'job-run', 'create', 'hello.py');
    assert.equal(created.code, 0, created.err);
    assert.equal((JSON.parse(created.out) as { number: number }).number, 3);
    const follow = await runway('logs', 'hello.py', '-f');
    assert.equal(follow.code, 0, follow.err);
    assert.match(follow.out, /all done/);
    assert.match(follow.err, /Run status: completed/);
    const nope = await runway('job-run', 'info', 'hello.py', '42');
    assert.equal(nope.code, 1);
    assert.match(nope.err, /run #42 of script hello\.py not found/);
  });

  it('cancel of a finished run reports the terminal state', async () => {
    const c = await runway('cancel', 'fail.py');
    assert.equal(c.code, 1, c.out);
    assert.match(c.err, /terminal state/);
    const c2 = await runway('job-run', 'cancel', 'hello.py', '1');
    assert.equal(c2.code, 1);
    assert.match(c2.err, /run 1 is already in a terminal state \(completed\)/);
  });

  it('cancels a running run; logs -f follows it to cancelled (exit 1)', async () => {
    writeFileSync(join(dir, 'slow.py'), 'import time\nprint("slow start", flush=True)\ntime.sleep(600)\n');
    const l = await runway('launch', 'slow.py', '-d');
    assert.equal(l.code, 0, l.out + l.err);
    const c = await runway('cancel', 'slow.py');
    assert.equal(c.code, 0, c.out + c.err);
    assert.match(c.out, /Requested cancellation of run #1 of slow\.py \(status: (cancelling|cancelled)\)/);
    // -f ends with the run; a run that did not complete exits 1 with the reason.
    const f = await runway('--json', 'logs', 'slow.py', '-f');
    assert.equal(f.code, 1, f.out + f.err);
    const lines = f.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; text: string });
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i + 1),
    );
    assert.ok(
      lines.some((l) => l.text === 'slow start'),
      f.out,
    );
    assert.match(f.err, /run #1 of slow\.py was cancelled/);
  });

  it('an unknown script exits 1 with the server 404 detail', async () => {
    for (const args of [
      ['job', 'info', 'nope.py'],
      ['job-run', 'list', 'nope.py'],
      ['cancel', 'nope.py'],
      ['logs', 'nope.py'],
    ]) {
      const r = await runway(...args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.out}${r.err}`);
      assert.match(r.err, /script nope\.py not found \(HTTP 404\)/);
    }
    const l = await runway('launch', 'nope.py');
    assert.equal(l.code, 2);
    assert.match(l.err, /entry point nope\.py not found/);
  });

  it('job <script> delete removes the job (exit 0), after which it is unknown (exit 1)', async () => {
    const up = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/scripts`, {
      name: 'gone.py',
      description: '',
      entry_point: 'gone.py',
      script_type: 'batch',
    });
    assert.equal(up.status, 201, up.text);
    const d = await runway('job', 'gone.py', 'delete');
    assert.equal(d.code, 0, d.err);
    assert.match(d.out, /Job gone\.py deleted \(its runs and versions are kept\)/);
    const again = await runway('job', 'delete', 'gone.py');
    assert.equal(again.code, 1);
    assert.match(again.err, /script gone\.py not found \(HTTP 404\)/);
  });

  it('with --json, a failing run ends with one JSON error object on stderr and exit 1', async () => {
    const r = await runway('--json', 'launch', 'fail.py');
    assert.equal(r.code, 1, r.out + r.err);
    const last = r.err.trim().split('\n').at(-1)!;
    const e = JSON.parse(last) as {
      error: {
        code: string;
        message: string;
        exit_code: number;
        run: { number: number; failure_reason: string };
      };
    };
    assert.equal(e.error.code, 'run_failed');
    assert.equal(e.error.exit_code, 1);
    assert.match(e.error.message, /^run #\d+ of fail\.py failed: exit_code, exit code 3/);
    assert.equal(e.error.run.number, (JSON.parse(r.out) as { number: number }).number);
    assert.equal(e.error.run.failure_reason, 'exit_code');
    assert.equal((JSON.parse(r.out) as { status: string }).status, 'failed', 'stdout holds the run');
  });

  it('with --json, every error is one JSON object on stderr, with the same exit codes', async () => {
    type Err = { error: { code: string; message: string; exit_code: number; status?: number } };
    const parse = (r: { err: string }) => {
      const lines = r.err.trim().split('\n');
      assert.equal(lines.length, 1, r.err);
      return JSON.parse(lines[0]!) as Err;
    };
    const notFound = await runway('--json', 'job', 'info', 'nope.py');
    assert.equal(notFound.code, 1);
    assert.equal(notFound.out, '');
    assert.deepEqual(parse(notFound).error, {
      code: 'not_found',
      message: 'script nope.py not found (HTTP 404)',
      exit_code: 1,
      status: 404,
      detail: 'script nope.py not found',
    });
    const usage = await runway('--json', 'job', '--bogus');
    assert.equal(usage.code, 2);
    assert.equal(parse(usage).error.code, 'usage');
    assert.match(parse(usage).error.message, /unknown option '--bogus'/);
    const plainUsage = await runway('job', '--bogus');
    assert.equal(plainUsage.code, 2);
    assert.match(plainUsage.err, /^error: unknown option '--bogus'/);
    const local = await runway('--json', 'launch', 'nope.py');
    assert.equal(local.code, 2);
    assert.deepEqual(parse(local).error, {
      code: 'usage',
      message: parse(local).error.message,
      exit_code: 2,
    });
    assert.match(parse(local).error.message, /entry point nope\.py not found/);
    const down = await runway('--json', '--api-url', 'http://127.0.0.1:9/api', 'job', 'list');
    assert.equal(down.code, 3);
    assert.equal(parse(down).error.code, 'unreachable');
    assert.equal(parse(down).error.exit_code, 3);
    const plainDown = await runway('--api-url', 'http://127.0.0.1:9/api', 'job', 'list');
    assert.equal(plainDown.code, 3);
    assert.match(plainDown.err, /^runway: cannot reach Runway at /);
  });

  it('job delete <script> and job <script> delete: one path, the same output and exit codes', async () => {
    for (const name of ['del-a.py', 'del-b.py']) {
      const up = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/scripts`, {
        name,
        description: '',
        entry_point: name,
        script_type: 'batch',
      });
      assert.equal(up.status, 201, up.text);
    }
    const a = await runway('job', 'delete', 'del-a.py');
    const b = await runway('job', 'del-b.py', 'delete');
    assert.deepEqual([a.code, b.code], [0, 0], a.err + b.err);
    assert.equal(a.out.replace('del-a', 'X'), b.out.replace('del-b', 'X'));
    assert.equal(a.out, 'Job del-a.py deleted (its runs and versions are kept)\n');
    assert.equal(a.err, b.err.replace('del-b', 'del-a'));
    const a2 = await runway('--json', 'job', 'delete', 'del-a.py');
    const b2 = await runway('--json', 'job', 'del-b.py', 'delete');
    assert.deepEqual([a2.code, b2.code], [1, 1]);
    assert.equal(a2.err.replaceAll('del-a', 'X'), b2.err.replaceAll('del-b', 'X'));
    assert.equal((JSON.parse(a2.err) as { error: { code: string } }).error.code, 'not_found');
  });

  it("a deleted job's runs stay reachable by its name (job-run list/info, logs); the job itself is gone", async () => {
    writeFileSync(join(dir, 'temp.py'), 'print("temporary")\n');
    const l = await runway('launch', 'temp.py');
    assert.equal(l.code, 0, l.out + l.err);
    const d = await runway('job', 'delete', 'temp.py');
    assert.equal(d.code, 0, d.err);
    const info = await runway('job', 'info', 'temp.py');
    assert.equal(info.code, 1);
    assert.match(info.err, /script temp\.py not found \(HTTP 404\)/);
    const list = await runway('job-run', 'list', 'temp.py');
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /temp\.py\s+completed/);
    const json = JSON.parse((await runway('--json', 'job-run', 'list', 'temp.py')).out) as {
      number: number;
      status: string;
    }[];
    assert.deepEqual(
      json.map((r) => [r.number, r.status]),
      [[1, 'completed']],
    );
    const one = await runway('job-run', 'info', 'temp.py', '1');
    assert.equal(one.code, 0, one.err);
    assert.match(one.out, /completed/);
    const logs = await runway('logs', 'temp.py');
    assert.equal(logs.code, 0, logs.err);
    assert.match(logs.out, /^temporary$/m);
    // REST: Runway's `script` filter finds them; the compatible script route still says 404.
    const ws = `/api/v1/workspaces/${s.workspaceId}`;
    const byName = await s.call('GET', `${ws}/runs?script=temp.py`);
    assert.equal(byName.status, 200, byName.text);
    assert.equal((byName.json as { items: unknown[] }).items.length, 1);
    assert.equal((await s.call('GET', `${ws}/scripts/temp.py`)).status, 404);
    const unknown = await s.call('GET', `${ws}/runs?script=never.py`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /script never\.py not found/);
    // Created again (the same job, its next version): the runs by name are still there.
    const again = await s.call('POST', `${ws}/scripts`, {
      name: 'temp.py',
      description: '',
      entry_point: 'temp.py',
      script_type: 'batch',
    });
    assert.equal(again.status, 201, again.text);
    const fresh = await runway('--json', 'job-run', 'list', 'temp.py');
    assert.equal(fresh.code, 0, fresh.err);
    assert.deepEqual(
      (JSON.parse(fresh.out) as { number: number }[]).map((r) => r.number),
      [1],
    );
  });

  it('job info shows the time zone (text and --json); job create --schedule without --tz means UTC', async () => {
    writeFileSync(join(dir, 'zoned.py'), 'print("z")\n');
    const berlin = await runway(
      'job',
      'create',
      'zoned.py',
      '--schedule',
      '0 3 * * *',
      '--tz',
      'Europe/Berlin',
    );
    assert.equal(berlin.code, 0, berlin.err);
    const info = await runway('job', 'info', 'zoned.py');
    assert.match(info.out, /Time zone/);
    assert.match(info.out, /0 3 \* \* \*\s+Europe\/Berlin/);
    const j = JSON.parse((await runway('--json', 'job', 'info', 'zoned.py')).out) as { timezone: string };
    assert.equal(j.timezone, 'Europe/Berlin');
    const utc = await runway('job', 'create', 'zoned.py', '--schedule', '0 4 * * *');
    assert.equal(utc.code, 0, utc.err);
    assert.match(utc.out, /0 4 \* \* \*\s+UTC/);
    const bad = await runway('job', 'create', 'zoned.py', '--tz', 'UTC');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--tz goes with --schedule/);
    const step = await runway('job', 'create', 'zoned.py', '--schedule', '*/61 * * * *');
    assert.equal(step.code, 1, 'the server refuses it');
    assert.match(
      step.err,
      /invalid schedule "\*\/61 \* \* \* \*": minute step 61 out of range 1-59 .*\(HTTP 400\)/,
    );
  });

  it('on a terminal, both delete forms ask first; no answer but y keeps the job (exit 1)', async () => {
    /** `runway …` on a pseudo-terminal (util-linux `script`), answering the question with `answer`. */
    const onTerminal = (answer: string, ...args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const cmd = [process.execPath, runwayCliPath, '--api-url', s.api, ...args]
          .map((a) => `'${a}'`)
          .join(' ');
        const child = spawn('script', ['-qec', cmd, '/dev/null'], {
          cwd: dir,
          env: runwayCliEnv(s, configDir),
        });
        let out = '';
        let answered = false;
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (!answered && out.includes('[y/N]')) {
            answered = true;
            child.stdin.write(`${answer}\r`);
          }
        });
        child.on('close', (code) => resolve({ code, out }));
      });
    const up = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/scripts`, {
      name: 'asked.py',
      description: '',
      entry_point: 'asked.py',
      script_type: 'batch',
    });
    assert.equal(up.status, 201, up.text);
    const no1 = await onTerminal('n', 'job', 'delete', 'asked.py');
    const no2 = await onTerminal('', 'job', 'asked.py', 'delete');
    for (const no of [no1, no2]) {
      assert.equal(no.code, 1, no.out);
      assert.match(no.out, /Delete job asked\.py\? Its runs and versions are kept\. \[y\/N\]/);
      assert.match(no.out, /runway: job asked\.py not deleted/);
    }
    assert.equal((await runway('job', 'info', 'asked.py')).code, 0, 'kept');
    const yes = await onTerminal('y', 'job', 'asked.py', 'delete');
    assert.equal(yes.code, 0, yes.out);
    assert.match(yes.out, /Job asked\.py deleted \(its runs and versions are kept\)/);
    assert.equal((await runway('job', 'info', 'asked.py')).code, 1, 'deleted');
  });
});
