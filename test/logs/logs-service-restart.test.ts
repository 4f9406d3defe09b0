import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startStackProcess } from '../support/process.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { createBatchJob, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';
import { waitForSealRecord } from './seal.js';
import { readSse } from './sse.js';

const LINES = 150;

/** The logs service in its own process (services/logs main), on the stack's NATS and database. */
async function startLogsProcess(s: TestStack): Promise<ChildProcess> {
  return (await startStackProcess(s, 'dist/services/logs/src/main.js', /runway logs ready/)).child;
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
    await createBatchJob(s, 'steady.py');
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
    const row = await waitForSealRecord(s, id);
    assert.equal(row.line_count, texts.length);
    assert.equal(row.sealed_by, 'worker');
  });
});
