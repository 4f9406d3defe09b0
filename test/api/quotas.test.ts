import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { buildPackage } from '#libs/archive';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { uploadPackage } from '../jobs/support.js';
import { startTestStack, type TestStack } from '../support/stack.js';

type Unary = (
  req: object,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
) => void;

const errorBody = z.object({
  status_code: z.number(),
  detail: z.string(),
  extra: z.record(z.string(), z.unknown()),
});

const GRPC_MAX = 256 * 1024;

describe('quotas and limits (the in-process stack)', () => {
  let s: TestStack;
  let client: grpc.Client & Record<string, Unary>;
  before(async () => {
    s = await startTestStack({
      RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS: '60',
      RUNWAY_MAX_CONCURRENT_UPLOADS: '1',
      RUNWAY_RATE_DEVICE_CODES_PER_MINUTE: '3',
      RUNWAY_RATE_TOKEN_POLLS_PER_MINUTE: '5',
      RUNWAY_GRPC_MAX_MESSAGE_BYTES: String(GRPC_MAX),
    });
    const pkg = loadRunwayPackage();
    client = new pkg.runway.v1.Runway(
      `127.0.0.1:${s.runway.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as never;
  });
  after(async () => {
    client.close();
    await s.stop();
  });

  it('refuses a schedule firing more often than RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS (422)', async () => {
    await uploadPackage(s, 'deployments', [{ path: 'quota/load.py', content: 'print("hi")\n' }]);
    const upsert = (schedule: string) =>
      s.call('POST', `/api/v1/workspaces/${s.workspaceId}/scripts`, {
        name: 'quota/load.py',
        entry_point: 'quota/load.py',
        script_type: 'batch',
        schedule,
      });
    const fast = await upsert('*/10 * * * * *');
    assert.equal(fast.status, 422, fast.text);
    const body = errorBody.parse(fast.json);
    assert.equal(body.status_code, 422);
    assert.match(body.detail, /fires every 10 s; this server allows at most one fire every 60 s/);
    assert.equal(body.extra.code, 'schedule_too_frequent');
    const ok = await upsert('*/5 * * * *');
    assert.ok(ok.status === 200 || ok.status === 201, ok.text);
  });

  it('answers 429 to an upload while the workspace has its quota of uploads in flight', async () => {
    // An upload that stays in flight: the headers and part of the body, the rest never sent.
    const boundary = 'quota-boundary';
    const startSlow = () => {
      const req = request(`${s.api}/v1/workspaces/${s.workspaceId}/deployments`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${s.adminToken}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(10 * 1024 * 1024),
        },
      });
      const slow: { req: typeof req; status?: number; done: Promise<void> } = {
        req,
        done: new Promise<void>((resolve) => {
          req.on('response', (res) => {
            res.resume();
            slow.status = res.statusCode ?? 0;
            resolve();
          });
          req.on('error', () => {
            slow.status ??= -1;
            resolve();
          });
        }),
      };
      req.write(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="w.tar.gz"\r\n` +
          `Content-Type: application/x-tar\r\n\r\n`,
      );
      req.write(Buffer.alloc(64 * 1024));
      return slow;
    };
    let slow = startSlow();
    // Once the gateway sees the slow upload, it holds the one slot; a probe may take the slot for a
    // moment just then, and the slow one gets the 429 instead: it starts again.
    let second: Awaited<ReturnType<TestStack['call']>> | undefined;
    for (const end = Date.now() + 20_000; Date.now() < end;) {
      if (slow.status !== undefined) {
        assert.equal(slow.status, 429, 'the slow upload ends only when refused');
        slow = startSlow();
      }
      second = await s.call(
        'PUT',
        `/api/v1/workspaces/${s.workspaceId}/blobs/${'0'.repeat(64)}`,
        'x',
        undefined,
        { 'content-type': 'application/octet-stream' },
      );
      if (second.status === 429) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(slow.status, undefined, 'the slow upload is still in flight');
    assert.equal(second?.status, 429, second?.text);
    const body = errorBody.parse(second.json);
    assert.equal(body.extra.code, 'too_many_uploads');
    assert.match(body.detail, /at most 1 at once/);
    // Reads are not uploads.
    assert.equal((await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/deployments`)).status, 200);

    // The slow upload gives up: its slot is free again.
    slow.req.destroy();
    await slow.done;
    let after429 = 0;
    for (let i = 0; i < 200; i++) {
      try {
        await uploadPackage(s, 'deployments', [{ path: 'quota/again.py', content: 'print(2)\n' }]);
        break;
      } catch (err) {
        if (!/429/.test(String(err))) throw err;
        after429++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.ok(after429 < 200, 'the slot was released');
  });

  it('rate-limits the unauthenticated device-code routes per client (429 with Retry-After)', async () => {
    const code = () => fetch(`${s.auth}/v1/github/device-flow/code`, { method: 'POST' });
    const codes: Response[] = [];
    for (let i = 0; i < 4; i++) codes.push(await code());
    assert.deepEqual(
      codes.map((r) => r.status),
      [201, 201, 201, 429],
    );
    const limited = codes[3]!;
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const body = errorBody.parse(await limited.json());
    assert.equal(body.status_code, 429);
    assert.equal(body.extra.code, 'rate_limited');
    assert.equal(body.extra.retry_after, retryAfter);

    const first = z.object({ device_code: z.string() }).parse(await codes[0]!.json());
    const poll = () =>
      s.call('POST', '/auth/v1/github/device-flow/token', { device_code: first.device_code }, null);
    const polls: number[] = [];
    for (let i = 0; i < 6; i++) polls.push((await poll()).status);
    assert.deepEqual(polls, [428, 428, 428, 428, 428, 429]);
    // Authenticated routes are not rate-limited.
    for (let i = 0; i < 10; i++) assert.equal((await s.call('GET', '/api/v1/workspaces')).status, 200);
  });

  it('reads a gRPC message only after authentication, up to RUNWAY_GRPC_MAX_MESSAGE_BYTES', async () => {
    const call = (method: string, req: object, token: string | null) =>
      new Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> }>((resolve) => {
        const md = new grpc.Metadata();
        if (token) md.set('authorization', `Bearer ${token}`);
        client[method]!(req, md, (err, res) => resolve({ err, res }));
      });
    const big = new Uint8Array(GRPC_MAX + 1024);
    // Without credentials the message is never read: no size error, UNAUTHENTICATED.
    const anon = await call('CreateDeployment', { workspace_id: s.workspaceId, package: big }, null);
    assert.equal(anon.err?.code, grpc.status.UNAUTHENTICATED, anon.err?.details);
    const forged = await call('CreateDeployment', { workspace_id: s.workspaceId, package: big }, 'rwy_nope');
    assert.equal(forged.err?.code, grpc.status.UNAUTHENTICATED, forged.err?.details);
    // Ping stays public (answered without reading its request).
    const ping = await call('Ping', {}, null);
    assert.equal(ping.err, null);
    assert.equal(ping.res.message, 'pong');
    // Authenticated: the limit applies.
    const tooBig = await call(
      'CreateDeployment',
      { workspace_id: s.workspaceId, package: big },
      s.adminToken,
    );
    assert.equal(tooBig.err?.code, grpc.status.RESOURCE_EXHAUSTED, tooBig.err?.details);
    const pkg = new Uint8Array(buildPackage([{ path: 'quota/grpc.py', content: 'print(3)\n' }]));
    const ok = await call('CreateDeployment', { workspace_id: s.workspaceId, package: pkg }, s.adminToken);
    assert.equal(ok.err, null, ok.err?.details);
    const me = await call('Me', {}, s.adminToken);
    assert.equal(me.err, null);
  });
});
