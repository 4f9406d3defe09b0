import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from './index.js';

describe('NATS credentials in the configuration', () => {
  it('takes NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_CREDS beside NATS_URL', () => {
    const url = 'nats://nats.example:4222';
    assert.deepEqual(loadConfig({ NATS_URL: url, NATS_USER: 'svc', NATS_PASSWORD: 'pw' }).nats.auth, {
      kind: 'user',
      user: 'svc',
      password: 'pw',
    });
    assert.deepEqual(loadConfig({ NATS_URL: url, NATS_TOKEN: 't0k' }).nats.auth, {
      kind: 'token',
      token: 't0k',
    });
    assert.deepEqual(loadConfig({ NATS_URL: url, NATS_CREDS: '/etc/runway/svc.creds' }).nats.auth, {
      kind: 'creds',
      file: '/etc/runway/svc.creds',
    });
    assert.equal(loadConfig({ NATS_URL: 'nats://svc:pw@nats.example:4222' }).nats.auth, undefined);
    assert.equal(loadConfig({}).nats.auth, undefined);
  });

  it('refuses half or conflicting credentials, and credentials without NATS_URL, naming the variables', () => {
    const url = 'nats://nats.example:4222';
    for (const env of [
      { NATS_URL: url, NATS_USER: 'svc' },
      { NATS_URL: url, NATS_PASSWORD: 'pw' },
      { NATS_URL: url, NATS_TOKEN: 't', NATS_CREDS: '/x.creds' },
      { NATS_TOKEN: 't' },
    ])
      assert.throws(
        () => loadConfig(env),
        (err: unknown) => err instanceof ConfigError && /NATS_/.test(err.message),
      );
  });

  it('never shows a password or token of a wrong value', () => {
    assert.throws(
      () => loadConfig({ NATS_URL: 'http://svc:hunter2@nats.example' }),
      (err: unknown) =>
        err instanceof ConfigError && !err.message.includes('hunter2') && /NATS_URL/.test(err.message),
    );
  });
});
