import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { after, before, describe, it } from 'node:test';
import { protoPath } from '../../services/gateway/src/grpc/grpc-server.js';
import { startTestStack, type TestStack } from '../support/stack.js';

type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;

describe('gRPC API', () => {
  let s: TestStack;
  let client: grpc.Client & Record<string, Unary>;
  before(async () => {
    s = await startTestStack();
    const def = protoLoader.loadSync(protoPath(), { keepCase: true, longs: Number, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { runway: { v1: { Runway: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client } } };
    client = new pkg.runway.v1.Runway(`127.0.0.1:${s.runway.grpcPort}`, grpc.credentials.createInsecure()) as never;
  });
  after(async () => {
    client.close();
    await s.stop();
  });

  const call = (method: string, req: object, token: string | null = s.adminToken) =>
    new Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> }>((resolve) => {
      const md = new grpc.Metadata();
      if (token) md.set('authorization', `Bearer ${token}`);
      client[method]!(req, md, (err, res) => resolve({ err, res }));
    });

  it('answers the same operations as REST with the same authorization', async () => {
    const ping = await call('Ping', {}, null);
    assert.equal(ping.err, null);
    assert.equal(ping.res.message, 'pong');
    const me = await call('Me', {});
    assert.equal(me.err, null);
    assert.equal((me.res.default_workspace as { id: string }).id, s.workspaceId);
    const anon = await call('Me', {}, null);
    assert.equal(anon.err?.code, grpc.status.UNAUTHENTICATED);
    const other = await call('ListDeployments', { workspace_id: '00000000-0000-4000-8000-000000000000' });
    assert.equal(other.err?.code, grpc.status.NOT_FOUND);
    const missing = await call('ListDeployments', {});
    assert.equal(missing.err?.code, grpc.status.INVALID_ARGUMENT);
  });

  it('creates, lists and revokes tokens', async () => {
    const created = await call('CreateToken', { name: 'grpc' });
    assert.equal(created.err, null, created.err?.details);
    assert.match(String(created.res.token), /^rwy_/);
    const list = await call('ListTokens', {});
    assert.ok((list.res.items as { id: string }[]).some((t) => t.id === created.res.id));
    const revoked = await call('RevokeToken', { id: created.res.id });
    assert.equal(revoked.res.state, 'revoked');
    const denied = await call('Me', {}, String(created.res.token));
    assert.equal(denied.err?.code, grpc.status.UNAUTHENTICATED);
    const bad = await call('CreateToken', { name: '' });
    assert.equal(bad.err?.code, grpc.status.INVALID_ARGUMENT);
  });
});
