import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashPassword, passwordMatches, passwordProblem } from './passwords.js';
import { safeReturnTo } from './oidc.service.js';

describe('passwords', () => {
  it('needs 10 to 200 characters and not the email', () => {
    assert.match(passwordProblem('short', 'a@b.c') ?? '', /at least 10/);
    assert.match(passwordProblem('x'.repeat(201), 'a@b.c') ?? '', /at most 200/);
    assert.match(passwordProblem(' Ann@Example.com ', 'ann@example.com') ?? '', /email/);
    assert.equal(passwordProblem('a long passphrase', 'ann@example.com'), null);
  });

  it('hashes with argon2id (salted) and verifies only the same password', async () => {
    const a = await hashPassword('a long passphrase');
    const b = await hashPassword('a long passphrase');
    assert.match(a, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.notEqual(a, b, 'a new salt each time');
    assert.equal(await passwordMatches(a, 'a long passphrase'), true);
    assert.equal(await passwordMatches(a, 'a long passphrasE'), false);
    assert.equal(await passwordMatches('not a hash', 'a long passphrase'), false);
  });
});

describe('OIDC return_to', () => {
  it('keeps same-origin paths only', () => {
    assert.equal(safeReturnTo('/jobs?status=failed#x'), '/jobs?status=failed#x');
    for (const bad of [
      '//evil.example',
      '/\\evil.example',
      'https://evil.example/',
      'jobs',
      '',
      undefined,
      ['/a'],
      '/a\nb',
    ])
      assert.equal(safeReturnTo(bad), '/', String(bad));
  });
});
