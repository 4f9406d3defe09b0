import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateLimiter } from './rate-limit.js';

describe('RateLimiter', () => {
  it('allows `limit` hits per window and key, then tells how long to wait', () => {
    const rl = new RateLimiter(2, 60_000);
    assert.equal(rl.hit('a', 0), 0);
    assert.equal(rl.hit('a', 1_000), 0);
    assert.equal(rl.hit('a', 2_000), 58);
    assert.equal(rl.hit('b', 2_000), 0, 'keys are counted apart');
    assert.equal(rl.hit('a', 60_000), 0, 'a new window');
  });
});
