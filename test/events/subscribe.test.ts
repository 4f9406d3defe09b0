import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { PUBLIC_EVENT_TYPES } from '#libs/contracts';
import { runwayCliPath } from '../support/cli.js';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, waitForStatus, type Json } from '../jobs/support.js';

const SECRET = 'ev3nts-s3cret-never-in-an-event';
const recipe = join(process.cwd(), 'docs/events/subscribe.py');
const python = process.env.RUNWAY_PYTHON ?? join(process.cwd(), '.venv/bin/python');

interface Line {
  type: string;
  version: number;
  seq: number;
  index: number;
  time: string;
  workspace: string;
  aggregate: { type: string; id: string };
  data: Json;
}

/** A running subscriber process: its JSON lines as they come, and a Ctrl-C. */
interface Subscriber {
  lines: Line[];
  err: () => string;
  waitFor: (pred: (l: Line) => boolean, timeoutMs?: number) => Promise<Line>;
  interrupt: () => Promise<{ code: number | null; ms: number }>;
}

describe('runway events subscribe (the public event catalogue)', () => {
  let s: TestStack;
  let env: NodeJS.ProcessEnv;
  const children: { kill: (sig: NodeJS.Signals) => void }[] = [];

  function start(cmd: string, args: string[]): Subscriber {
    const child = spawn(cmd, args, { env });
    children.push(child);
    const lines: Line[] = [];
    let buf = '';
    let err = '';
    const waiters = new Set<() => void>();
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)) as Line);
        buf = buf.slice(nl + 1);
      }
      for (const w of waiters) w();
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    return {
      lines,
      err: () => err,
      waitFor: (pred, timeoutMs = 30_000) =>
        new Promise((resolve, reject) => {
          const check = () => {
            const hit = lines.find(pred);
            if (!hit) return;
            waiters.delete(check);
            clearTimeout(t);
            resolve(hit);
          };
          const t = setTimeout(() => {
            waiters.delete(check);
            reject(new Error(`no such line after ${timeoutMs} ms; got ${lines.length}; stderr: ${err}`));
          }, timeoutMs);
          waiters.add(check);
          check();
        }),
      interrupt: async () => {
        const t0 = Date.now();
        child.kill('SIGINT');
        const code = await exited;
        return { code, ms: Date.now() - t0 };
      },
    };
  }
  const cli = (...args: string[]) => start(process.execPath, [runwayCliPath, 'events', 'subscribe', ...args]);
  const py = (...args: string[]) => start(python, [recipe, ...args]);
  const cliOnce = (...args: string[]) => run(process.execPath, [runwayCliPath, 'events', ...args], { env });

  const base = () => `/api/v1/workspaces/${s.workspaceId}`;
  const job = async (name: string, schedule: string | null = null) => {
    const r = await s.call('POST', `${base()}/scripts`, {
      name,
      description: '',
      entry_point: name,
      script_type: 'batch',
      active: true,
      profile: null,
      schedule,
    });
    assert.ok(r.status === 200 || r.status === 201, r.text);
    return r.json as Json;
  };
  const runJob = async (name: string, statuses: string[]) => {
    const r = await s.call('POST', `${base()}/runs`, { script_id_or_name_or_secret: name, profile: null });
    assert.equal(r.status, 201, r.text);
    return waitForStatus(s, (r.json as Json).id as string, statuses);
  };
  const isJobCreated = (name: string) => (l: Line) =>
    l.type === 'JobCreated' && (l.data.spec as Json).name === name;

  before(async () => {
    s = await startTestStack({ RUNWAY_KILL_GRACE_SECONDS: '1' });
    const nats = s.env.natsServer;
    assert.ok(nats, 'the test stack has its own nats-server');
    // As an operator outside the install: the NATS `admin` user (read-only, no event publishing).
    env = {
      ...process.env,
      RUNWAY_DATA_DIR: s.dataDir,
      NATS_URL: nats.urlFor('admin'),
      RUNWAY_EVENTS_STREAM: s.env.stream,
      RUNWAY_SUBJECT_PREFIX: s.env.subjectPrefix,
    };
    await uploadPackage(s, 'deployments', [
      { path: 'ok.py', content: 'print("fine")\n' },
      { path: 'fail.py', content: 'import sys\nprint("boom", file=sys.stderr)\nsys.exit(3)\n' },
    ]);
    await uploadPackage(s, 'configurations', [
      { path: 'config.toml', content: 'log_level = "WARNING"\n' },
      { path: 'prod.secrets.toml', content: `[sources.demo]\napi_key = "${SECRET}"\n` },
    ]);
    await job('ok.py');
    await job('fail.py');
    await runJob('ok.py', ['completed']);
    await runJob('fail.py', ['failed']);
    await job('ok.py', '0 0 1 1 *'); // a schedule change (JobUpdated) that does not fire during the test
    await job('marker-1');
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await s.stop();
  });

  let all: Line[] = [];

  it('prints the public events from the beginning, each valid against its checked-in schema, no internal event, no secret', async () => {
    const sub = cli();
    await sub.waitFor(isJobCreated('marker-1'));
    const stop = await sub.interrupt();
    assert.equal(stop.code, 0, sub.err());
    assert.ok(stop.ms < 3000, `Ctrl-C took ${stop.ms} ms`);
    all = sub.lines;
    const types = new Set(all.map((l) => l.type));
    for (const t of [
      'DeploymentCreated',
      'ConfigurationCreated',
      'JobCreated',
      'JobUpdated',
      'RunRequested',
      'RunStarting',
      'RunStarted',
      'RunCompleted',
      'RunFailed',
      'RunLogsSealed',
    ]) {
      assert.ok(types.has(t), `${t} missing; got ${[...types].join(', ')}`);
    }
    for (const t of types) assert.ok(PUBLIC_EVENT_TYPES.includes(t), `${t} is not public`);
    const updated = all.find((l) => l.type === 'JobUpdated');
    assert.ok((updated?.data.changed as string[]).includes('schedule'));
    const failed = all.find((l) => l.type === 'RunFailed');
    assert.equal(failed?.data.reason, 'exit_code');
    assert.equal(failed?.data.exitCode, 3);
    // Ordered by stream sequence (and index inside a commit), each event once.
    for (let i = 1; i < all.length; i++) {
      const [a, b] = [all[i - 1]!, all[i]!];
      assert.ok(b.seq > a.seq || (b.seq === a.seq && b.index > a.index), `order at ${i}`);
    }
    assert.doesNotMatch(JSON.stringify(all), new RegExp(SECRET));
    const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
    const validators = new Map<string, ReturnType<typeof ajv.compile>>();
    for (const l of all) {
      assert.equal(l.workspace, s.workspaceId);
      let v = validators.get(l.type);
      if (!v) {
        const schema = JSON.parse(
          readFileSync(join(process.cwd(), `docs/events/${l.type}.v${l.version}.schema.json`), 'utf8'),
        ) as Json;
        v = ajv.compile(schema);
        validators.set(l.type, v);
      }
      assert.ok(v(l.data), `${l.type} at ${l.seq}: ${JSON.stringify(v.errors)}`);
    }
  });

  it('filters by type', async () => {
    const sub = cli('--type', 'RunFailed', '--type', 'RunCompleted,JobCreated');
    await sub.waitFor(isJobCreated('marker-1'));
    assert.equal((await sub.interrupt()).code, 0, sub.err());
    assert.deepEqual(
      sub.lines.map((l) => `${l.seq}/${l.index}`),
      all
        .filter((l) => ['RunFailed', 'RunCompleted', 'JobCreated'].includes(l.type))
        .map((l) => `${l.seq}/${l.index}`),
    );
  });

  it('starts at a stream sequence or at a time', async () => {
    const failed = all.find((l) => l.type === 'RunFailed')!;
    const fromSeq = cli('--from', String(failed.seq));
    await fromSeq.waitFor(isJobCreated('marker-1'));
    assert.equal((await fromSeq.interrupt()).code, 0, fromSeq.err());
    assert.deepEqual(
      fromSeq.lines.map((l) => `${l.seq}/${l.index}`),
      all.filter((l) => l.seq >= failed.seq).map((l) => `${l.seq}/${l.index}`),
    );

    const lastSeq = all.at(-1)!.seq;
    await new Promise((r) => setTimeout(r, 50));
    const t0 = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 50));
    await job('marker-2');
    const fromTime = cli('--from', t0);
    const m2 = await fromTime.waitFor(isJobCreated('marker-2'));
    assert.equal((await fromTime.interrupt()).code, 0, fromTime.err());
    assert.ok(fromTime.lines.every((l) => l.seq > lastSeq && l.time >= t0));
    assert.equal(fromTime.lines[0], m2);
  });

  it('refuses internal and unknown types (exit 2)', async () => {
    for (const t of [
      'DataKeyCreated',
      'RunFinalizing',
      'FireQueued',
      'DeploymentFilesStaged',
      'NoSuchEvent',
    ]) {
      const r = await cliOnce('subscribe', '--type', t);
      assert.equal(r.code, 2, `${t}: ${r.err}`);
      assert.match(r.err, new RegExp(`--type ${t}: not a public event type`));
      assert.equal(r.out, '');
    }
    const bad = await cliOnce('subscribe', '--durable', 'no spaces');
    assert.equal(bad.code, 2, bad.err);
    const types = await cliOnce('types');
    assert.equal(types.code, 0, types.err);
    assert.match(types.out, /^RunFailed v1$/m);
    const typesJson = await run(process.execPath, [runwayCliPath, '--json', 'events', 'types'], { env });
    assert.equal(typesJson.code, 0, typesJson.err);
    assert.deepEqual(
      JSON.parse(typesJson.out),
      JSON.parse(readFileSync(join(process.cwd(), 'docs/events/catalogue.json'), 'utf8')),
    );
    const pyInternal = await run(python, [recipe, '--durable', 'x', '--type', 'DataKeyCreated'], { env });
    assert.equal(pyInternal.code, 2, pyInternal.err);
  });

  it('a durable resumes after Ctrl-C without loss or duplicates, from the CLI and from the Python recipe alike', async () => {
    const key = (l: Line) => `${l.seq}/${l.index}`;
    const seen: Line[] = [];
    // 1. The CLI creates the durable from a sequence and stops.
    const first = all.find((l) => l.type === 'RunRequested')!;
    const a = cli('--durable', 'audit', '--from', String(first.seq));
    await a.waitFor(isJobCreated('marker-2'));
    assert.equal((await a.interrupt()).code, 0, a.err());
    seen.push(...a.lines);
    assert.equal(a.lines[0]?.seq, first.seq);

    // 2. New events while nobody listens; the CLI again (its --from is ignored: the durable exists).
    await runJob('ok.py', ['completed']);
    await job('marker-3');
    const b = cli('--durable', 'audit', '--from', '1');
    await b.waitFor(isJobCreated('marker-3'));
    assert.equal((await b.interrupt()).code, 0, b.err());
    assert.match(b.err(), /durable audit exists: resuming/);
    assert.ok(b.lines.length > 0);
    assert.ok(b.lines[0]!.seq > seen.at(-1)!.seq, 'b starts after the last event a printed');
    seen.push(...b.lines);

    // 3. The Python recipe continues the same durable.
    await runJob('fail.py', ['failed']);
    await job('marker-4');
    const c = py('--durable', 'audit');
    await c.waitFor(isJobCreated('marker-4'), 60_000);
    assert.equal((await c.interrupt()).code, 0, c.err());
    assert.ok(c.lines.length > 0);
    assert.ok(c.lines[0]!.seq > seen.at(-1)!.seq, 'python starts after the last event the CLI printed');
    assert.ok(c.lines.some((l) => l.type === 'RunFailed'));
    seen.push(...c.lines);

    // 4. And the CLI after the recipe.
    await job('marker-5');
    const d = cli('--durable', 'audit');
    await d.waitFor(isJobCreated('marker-5'));
    assert.equal((await d.interrupt()).code, 0, d.err());
    assert.ok(d.lines.length > 0 && d.lines[0]!.seq > seen.at(-1)!.seq);
    seen.push(...d.lines);

    // Together: exactly what one subscriber from the same sequence prints (no loss, no duplicate).
    const whole = cli('--from', String(first.seq));
    await whole.waitFor(isJobCreated('marker-5'));
    assert.equal((await whole.interrupt()).code, 0, whole.err());
    assert.deepEqual(seen.map(key), whole.lines.map(key));
    assert.equal(new Set(seen.map(key)).size, seen.length);
    // The recipe prints the same lines as the CLI (payload as stored: the same for these events).
    const byKey = new Map(whole.lines.map((l) => [key(l), l]));
    for (const l of c.lines) assert.deepEqual(l, byKey.get(key(l)));
  });
});
