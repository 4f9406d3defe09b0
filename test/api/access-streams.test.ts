import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { after, before, describe, it } from 'node:test';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { createBatchJob, newUser, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';
import { readSse, type SseEvent } from '../logs/sse.js';
import { startTestStack, type TestStack } from '../support/stack.js';

describe('accounts: open log streams end when access ends', () => {
  let s: TestStack;
  let client: grpc.Client &
    Record<string, (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<Json>>;
  let runId = '';
  const ws = () => s.workspaceId;

  before(async () => {
    s = await startTestStack();
    await uploadPackage(s, 'deployments', [
      { path: 'slow.py', content: 'import time\nprint("started", flush=True)\ntime.sleep(120)\n' },
    ]);
    await createBatchJob(s, 'slow.py');
    const created = await s.call('POST', `/api/v1/workspaces/${ws()}/runs`, { script_id_or_name: 'slow.py' });
    assert.equal(created.status, 201, created.text);
    runId = (created.json as Json).id as string;
    const pkg = loadRunwayPackage();
    client = new pkg.runway.v1.Runway(
      `127.0.0.1:${s.runway.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as never;
  });
  after(async () => {
    await s.call('POST', `/api/v1/workspaces/${ws()}/runs/${runId}/cancel`);
    await waitForStatus(s, runId, ['cancelled', 'failed', 'completed'], 30_000).catch(() => undefined);
    client.close();
    await s.stop();
  });

  /** Opens an SSE follow with `token`, waits for it to be open, runs `cut`, and times the end. */
  const cutSse = async (token: string, cut: () => Promise<void>) => {
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    const reading = readSse(`${s.url}/api/v1/workspaces/${ws()}/runs/${runId}/logs/stream`, token, {
      timeoutMs: 30_000,
      onOpen: () => opened(),
    });
    await open;
    await cut();
    const cutAt = Date.now();
    const res = await reading;
    return { res, ms: Date.now() - cutAt, last: res.events.at(-1) as SseEvent | undefined };
  };

  it('a revoked token’s open SSE stream ends within 5 s with a 401 error event', async () => {
    const bob = await newUser(s, 'bob@example.com', 'member');
    const { res, ms, last } = await cutSse(bob.token, async () => {
      const tokenId = /^rwy_([a-f0-9]{16})_/.exec(bob.token)![1]!;
      assert.equal((await s.call('POST', `/api/v1/admin/tokens/${tokenId}/revoke`)).status, 201);
    });
    assert.equal(res.status, 200);
    assert.ok(ms < 5_000, `ended ${ms} ms after the revocation`);
    assert.equal(last?.event, 'error');
    assert.deepEqual(JSON.parse(last.data), { status: 401, detail: 'token has been revoked' });
  });

  it('an expiring token’s stream ends within 5 s of its expiry', async () => {
    const t = await s.call('POST', '/api/v1/tokens', {
      name: 'short',
      expires_at: new Date(Date.now() + 2_000).toISOString(),
    });
    const e = t.json as { token: string; expires_at: string };
    const { ms, last } = await cutSse(e.token, async () => {
      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(e.expires_at) - Date.now())));
    });
    assert.ok(ms < 5_000, `ended ${ms} ms after the expiry`);
    assert.equal(last?.event, 'error');
    assert.match(JSON.parse(last.data).detail as string, /expired/);
  });

  it('a disabled user’s stream and a removed member’s stream end within 5 s', async () => {
    const dan = await newUser(s, 'dan@example.com', 'viewer');
    const disabled = await cutSse(dan.token, async () => {
      assert.equal((await s.call('POST', `/api/v1/admin/users/${dan.id}/disable`, {})).status, 201);
    });
    assert.ok(disabled.ms < 5_000, `ended ${disabled.ms} ms after disabling`);
    assert.match(JSON.parse(disabled.last!.data).detail as string, /disabled/);
    const eve = await newUser(s, 'eve@example.com', 'viewer');
    const removed = await cutSse(eve.token, async () => {
      assert.equal((await s.call('DELETE', `/api/v1/workspaces/${ws()}/members/${eve.id}`)).status, 200);
    });
    assert.ok(removed.ms < 5_000, `ended ${removed.ms} ms after the removal`);
    assert.equal(JSON.parse(removed.last!.data).status, 404);
  });

  it('a revoked token’s gRPC FollowRunLogs stream fails UNAUTHENTICATED within 5 s', async () => {
    const t = await s.call('POST', '/api/v1/tokens', { name: 'grpc follow' });
    const g = t.json as { id: string; token: string };
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${g.token}`);
    const call = client.FollowRunLogs!({ workspace_id: ws(), run_id: runId }, md);
    const outcome = new Promise<{ code: grpc.status; at: number }>((resolve) => {
      call.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, at: Date.now() }));
      call.on('end', () => resolve({ code: grpc.status.OK, at: Date.now() }));
    });
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    const revokedAt = Date.now();
    assert.equal((await s.call('POST', `/api/v1/tokens/${g.id}/revoke`)).status, 201);
    const { code, at } = await outcome;
    assert.equal(code, grpc.status.UNAUTHENTICATED);
    assert.ok(at - revokedAt < 5_000, `ended ${at - revokedAt} ms after the revocation`);
  });
});
