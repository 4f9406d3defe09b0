import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureLimiter } from './failure-limiter.js';

describe('FailureLimiter (failed attempts per key in a window)', () => {
  it('refuses a key after `max` failures until the oldest leaves the window; a success clears it', () => {
    const fl = new FailureLimiter(3, 60_000);
    for (const t of [0, 10_000, 20_000]) {
      assert.equal(fl.wait('a', t), 0);
      fl.fail('a', t);
    }
    assert.equal(fl.wait('a', 20_000), 40, 'the first failure leaves the window at 60 s');
    assert.equal(fl.wait('b', 20_000), 0, 'keys are counted apart');
    assert.equal(fl.wait('a', 60_001), 0, 'two failures left in the window');
    fl.fail('a', 60_001);
    assert.ok(fl.wait('a', 60_001) > 0);
    fl.succeed('a');
    assert.equal(fl.wait('a', 60_001), 0);
  });

  it('keeps its memory bounded: at the key limit, keys without recent failures are dropped', () => {
    const fl = new FailureLimiter(1, 1000, 2);
    fl.fail('a', 0);
    fl.fail('b', 0);
    fl.fail('c', 5000);
    assert.equal(fl.wait('c', 5000), 1);
    assert.equal(fl.wait('a', 5000), 0);
  });
});
