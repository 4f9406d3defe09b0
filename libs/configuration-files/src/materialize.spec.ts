import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveProfile } from './materialize.js';

describe('configuration materialization', () => {
  it('resolves a run profile with the fallbacks access → prod → default files', () => {
    assert.deepEqual(resolveProfile(['default', 'prod', 'access'], 'access'), {
      profile: 'access',
      filesOf: 'access',
      warnings: [],
    });
    const a = resolveProfile(['default', 'prod'], 'access');
    assert.equal(a.profile, 'prod');
    assert.equal(a.filesOf, 'prod');
    assert.match(a.warnings[0]!, /"access" is not defined: using profile "prod"/);
    const b = resolveProfile(['default'], 'access');
    assert.deepEqual([b.profile, b.filesOf], ['access', null]);
    const c = resolveProfile(['default', 'access'], 'prod');
    assert.deepEqual([c.profile, c.filesOf], ['prod', null]);
    assert.deepEqual(resolveProfile(['default', 'tests'], 'tests'), {
      profile: 'tests',
      filesOf: 'tests',
      warnings: [],
    });
  });
});
