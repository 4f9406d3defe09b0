import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newDeviceCode } from './device-flow.service.js';

describe('device codes', () => {
  it('never begin with "-" (the 0.26.1 CLI passes them to --resume) and carry 256 bits', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const code = newDeviceCode();
      assert.match(code, /^[0-9a-f]{64}$/);
      seen.add(code);
    }
    assert.equal(seen.size, 5000);
  });
});
