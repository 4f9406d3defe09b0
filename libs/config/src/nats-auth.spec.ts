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

  it('takes a cluster as a comma-separated NATS_URL, and refuses a list with a bad member', () => {
    const list = 'nats://svc:pw@h1:4222, nats://h2:4222,nats://h3:4222';
    assert.equal(loadConfig({ NATS_URL: list }).nats.url, list);
    for (const bad of ['nats://h1:4222,http://h2:4222', 'nats://h1:4222,,nats://h3:4222', 'nats://h1:4222,'])
      assert.throws(
        () => loadConfig({ NATS_URL: bad }),
        (err: unknown) =>
          err instanceof ConfigError && /NATS_URL/.test(err.message) && !err.message.includes('pw'),
      );
  });

  it('takes RUNWAY_NATS_REPLICAS 1..5 (default 1, or the embedded cluster size)', () => {
    assert.equal(loadConfig({}).nats.replicas, 1);
    assert.equal(loadConfig({ NATS_URL: 'nats://h1:4222,nats://h2:4222,nats://h3:4222' }).nats.replicas, 1);
    assert.equal(loadConfig({ NATS_URL: 'nats://h1:4222', RUNWAY_NATS_REPLICAS: '3' }).nats.replicas, 3);
    assert.deepEqual(
      [
        loadConfig({ RUNWAY_NATS_CLUSTER: '3' }).nats.replicas,
        loadConfig({ RUNWAY_NATS_CLUSTER: '3' }).nats.clusterNodes,
      ],
      [3, 3],
    );
    assert.equal(loadConfig({ RUNWAY_NATS_CLUSTER: '5', RUNWAY_NATS_REPLICAS: '3' }).nats.replicas, 3);
    for (const env of [
      { RUNWAY_NATS_REPLICAS: '0' },
      { RUNWAY_NATS_REPLICAS: '6' },
      { RUNWAY_NATS_REPLICAS: 'three' },
      { RUNWAY_NATS_REPLICAS: '3' }, // one embedded server cannot hold 3 replicas
      { RUNWAY_NATS_CLUSTER: '2' },
      { RUNWAY_NATS_CLUSTER: '3', RUNWAY_NATS_REPLICAS: '5' },
    ])
      assert.throws(
        () => loadConfig(env),
        (err: unknown) => err instanceof ConfigError && /RUNWAY_NATS_(REPLICAS|CLUSTER)/.test(err.message),
      );
  });
});
