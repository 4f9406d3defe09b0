import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from '../support/stack.js';
import { createBatchJob, newUser, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';

describe('concurrent runs per workspace (RUNWAY_MAX_CONCURRENT_RUNS_PER_WORKSPACE)', () => {
  let s: TestStack;
  before(async () => {
    s = await startTestStack({
      RUNWAY_MAX_CONCURRENT_RUNS_PER_WORKSPACE: '1',
      RUNWAY_KILL_GRACE_SECONDS: '1',
    });
  });
  after(() => s.stop());

  const run = async (ws: string, token?: string) => {
    const r = await s.call(
      'POST',
      `/api/v1/workspaces/${ws}/runs`,
      { script_id_or_name_or_secret: 'sleep.py', profile: null },
      token,
    );
    assert.equal(r.status, 201, r.text);
    return (r.json as Json).id as string;
  };
  const status = async (ws: string, id: string, token?: string) =>
    ((await s.call('GET', `/api/v1/workspaces/${ws}/runs/${id}`, undefined, token)).json as Json).status;

  it("holds a workspace's second run pending while its first runs, without holding back another workspace", async () => {
    const other = await newUser(s, 'other@example.com');
    const sleep = [{ path: 'sleep.py', content: 'import time\nprint("up", flush=True)\ntime.sleep(600)\n' }];
    await uploadPackage(s, 'deployments', sleep);
    await uploadPackage(s, 'deployments', sleep, { workspace: other.workspaceId, token: other.token });
    await createBatchJob(s, 'sleep.py');
    const r = await s.call(
      'POST',
      `/api/v1/workspaces/${other.workspaceId}/scripts`,
      {
        name: 'sleep.py',
        description: '',
        entry_point: 'sleep.py',
        script_type: 'batch',
        active: true,
        profile: null,
        schedule: null,
      },
      other.token,
    );
    assert.ok(r.status === 200 || r.status === 201, r.text);

    const first = await run(s.workspaceId);
    await waitForStatus(s, first, ['running'], 30_000);
    const second = await run(s.workspaceId);
    const elsewhere = await run(other.workspaceId, other.token);
    // The other workspace's run starts although this one is at its limit.
    for (
      const until = Date.now() + 30_000;
      (await status(other.workspaceId, elsewhere, other.token)) !== 'running';
    ) {
      assert.ok(Date.now() < until, 'the other workspace was held back');
      await new Promise((res) => setTimeout(res, 100));
    }
    await new Promise((res) => setTimeout(res, 3_000));
    assert.equal(await status(s.workspaceId, second, undefined), 'pending', 'the second run waits');

    await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/runs/${first}/cancel`);
    await waitForStatus(s, first, ['cancelled'], 30_000);
    await waitForStatus(s, second, ['running'], 30_000);
    for (const [ws, id, token] of [
      [s.workspaceId, second, undefined],
      [other.workspaceId, elsewhere, other.token],
    ] as const) {
      await s.call('POST', `/api/v1/workspaces/${ws}/runs/${id}/cancel`, undefined, token);
    }
    await waitForStatus(s, second, ['cancelled'], 30_000);
  });
});
