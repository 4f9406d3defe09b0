import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, waitForStatus, type Json } from '../jobs/support.js';
import { readSse } from './sse.js';

const LINES = 150;

/** The logs service in its own process (services/logs main), on the stack's NATS and database. */
function startLogsProcess(s: TestStack): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(process.cwd(), 'dist/services/logs/src/main.js')], {
    env: {
      ...process.env,
      ...s.env.childEnv(),
      NATS_URL: s.env.natsUrl,
      DATABASE_URL: s.env.databaseUrl,
      RUNWAY_DATA_DIR: s.dataDir,
      RUNWAY_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`logs service did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('runway logs ready')) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`logs service exited with ${code}: ${out}`)));
  });
}

describe('the logs service restarted mid-run loses nothing', () => {
  let s: TestStack;
  let logs: ChildProcess | undefined;
  const base = () => `/api/v1/workspaces/${s.workspaceId}`;

  before(async () => {
    // Every service in the stack's process except the logs service, which runs as its own process.
    s = await startTestStack({ RUNWAY_SERVICES: 'deployments,configurations,scheduling,execution' });
    logs = await startLogsProcess(s);
    await uploadPackage(s, 'deployments', [
      {
        path: 'steady.py',
        content: `import time\nfor i in range(1, ${LINES + 1}):\n    print(f"steady {i}", flush=True)\n    time.sleep(0.03)\n`,
      },
    ]);
    const up = await s.call('POST', `${base()}/scripts`, {
      name: 'steady.py',
      description: '',
      entry_point: 'steady.py',
      script_type: 'batch',
      active: true,
      profile: null,
      schedule: null,
    });
    assert.ok(up.status < 300, up.text);
  });
  after(async () => {
    logs?.kill('SIGKILL');
    await s.stop();
  });

  it('follows to the seal and records it although the logs service was SIGKILLed and restarted', async () => {
    const created = await s.call('POST', `${base()}/runs`, {
      script_id_or_name_or_secret: 'steady.py',
      profile: null,
    });
    assert.equal(created.status, 201, created.text);
    const id = (created.json as Json).id as string;
    const following = readSse(`${s.url}${base()}/runs/${id}/logs/stream`, s.adminToken, {
      timeoutMs: 90_000,
    });
    await waitForStatus(s, id, ['running']);
    await new Promise((r) => setTimeout(r, 800));
    logs!.kill('SIGKILL');
    await new Promise((r) => logs!.once('exit', r));
    await new Promise((r) => setTimeout(r, 1_500));
    logs = await startLogsProcess(s);

    const res = await following;
    const texts = res.events
      .filter((e) => e.event === 'line')
      .map((e) => (JSON.parse(e.data) as { text: string }).text);
    const own = texts.filter((t) => t.startsWith('steady '));
    assert.deepEqual(
      own,
      Array.from({ length: LINES }, (_, i) => `steady ${i + 1}`),
    );
    const end = res.events.at(-1)!;
    assert.equal(end.event, 'end');
    assert.deepEqual(JSON.parse(end.data), { lineCount: texts.length, sealed: true });
    await waitForStatus(s, id, ['completed']);
    const text = String(((await s.call('GET', `${base()}/runs/${id}/logs`)).json as Json).logs);
    assert.deepEqual(
      text.split('\n').filter((t) => t.startsWith('steady ')),
      own,
    );
    // The restarted service read the seal it missed and recorded it.
    const db = s.env.newDb<{
      run_logs: { run_id: string; line_count: number | null; sealed_by: string | null };
    }>();
    const until = Date.now() + 30_000;
    let row;
    while (Date.now() < until) {
      row = await db.selectFrom('run_logs').selectAll().where('run_id', '=', id).executeTakeFirst();
      if (row?.line_count != null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(row?.line_count, texts.length);
    assert.equal(row?.sealed_by, 'worker');
  });
});
