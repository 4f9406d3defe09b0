import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from './stack.js';

describe('test stack', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startTestStack();
  });
  after(() => stack.stop());

  it('serves the API with the admin token and every service answers health', async () => {
    const ws = await stack.call('GET', `/api/v1/workspaces/${stack.workspaceId}`);
    assert.equal(ws.status, 200, ws.text);
    const health = await stack.call('GET', '/api/v1/health');
    assert.equal((health.json as { status: string }).status, 'ok', health.text);
  });

  it('answers unknown routes and workspaces with the compatible error body', async () => {
    const r = await stack.call('GET', '/api/v1/nope');
    assert.equal(r.status, 404);
    assert.equal((r.json as { status_code: number }).status_code, 404);
    assert.equal(typeof (r.json as { detail: unknown }).detail, 'string');
    const other = await stack.call('GET', '/api/v1/workspaces/00000000-0000-4000-8000-000000000000');
    assert.equal(other.status, 404);
    assert.match((other.json as { detail: string }).detail, /workspace .* not found/);
    const bad = await stack.call('POST', '/api/v1/workspaces', '{not json');
    assert.equal(bad.status, 400);
    assert.match((bad.json as { detail: string }).detail, /JSON/);
  });
});

describe('OpenAPI', () => {
  it('documents every mapped route, generated from the controllers', async () => {
    const stack = await startTestStack();
    try {
      const r = await stack.call('GET', '/api/openapi.json', undefined, null);
      assert.equal(r.status, 200);
      const doc = r.json as {
        openapi: string;
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      };
      assert.equal(doc.openapi, '3.1.0');
      for (const p of [
        '/api/v1/ping',
        '/api/v1/me',
        '/auth/v1/github/device-flow/code',
        '/api/v1/workspaces/{ws}',
      ])
        assert.ok(doc.paths[p], `${p} documented`);
      assert.ok(doc.paths['/auth/v1/github/device-flow/code']!.post!.responses['201']);
    } finally {
      await stack.stop();
    }
  });
});
