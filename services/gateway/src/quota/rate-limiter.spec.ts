import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConcurrencyLimiter, RateLimiter } from './rate-limiter.js';

describe('RateLimiter (token bucket per key)', () => {
  it('allows a burst of `perMinute`, then tells how long until the next token, per key', () => {
    const rl = new RateLimiter(2);
    assert.equal(rl.take('a', 0), 0);
    assert.equal(rl.take('a', 0), 0);
    assert.equal(rl.take('a', 0), 30, 'one token every 30 s');
    assert.equal(rl.take('b', 0), 0, 'keys are counted apart');
    assert.equal(rl.take('a', 30_000), 0, 'refilled');
    assert.equal(rl.take('a', 90_000), 0);
    assert.equal(rl.take('a', 90_000), 0, 'full again after a minute, never above the burst');
    assert.ok(rl.take('a', 90_000) > 0);
  });
});

describe('ConcurrencyLimiter', () => {
  it('holds at most `max` per key until released, and a release counts once', () => {
    const cl = new ConcurrencyLimiter(1);
    const release = cl.acquire('w');
    assert.ok(release);
    assert.equal(cl.acquire('w'), undefined);
    assert.ok(cl.acquire('other'));
    release();
    release();
    assert.equal(cl.count('w'), 0);
    assert.ok(cl.acquire('w'));
  });
});
