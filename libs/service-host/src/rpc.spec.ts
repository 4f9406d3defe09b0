import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { DomainError } from '#libs/eventstore';
import { parseRpcPayload, toRpcError } from './rpc.js';

describe('parseRpcPayload (a NATS request payload against its contract)', () => {
  const request = z.object({ workspaceId: z.string().uuid(), limit: z.number().int().min(1) });

  it('returns the parsed payload', () => {
    const ws = '6f1c1a34-3d6b-4f0e-9a57-0b8a1f6a2c11';
    assert.deepEqual(parseRpcPayload(request, { workspaceId: ws, limit: 3 }), { workspaceId: ws, limit: 3 });
  });

  it('names every wrong field in a 400 DomainError', () => {
    let caught: unknown;
    try {
      parseRpcPayload(request, { workspaceId: 'nope', limit: 0 }, 'list request');
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof DomainError);
    assert.match(caught.message, /^invalid list request: workspaceId: .+; limit: .+/);
    assert.equal(toRpcError(caught).status, 400);
    assert.throws(() => parseRpcPayload(request, 'text'), /invalid request: \(root\): /);
  });
});
