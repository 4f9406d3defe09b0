import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from './index.js';

describe('dashboard sign-in configuration', () => {
  it('reads session durations and defaults to 12 h idle, 7 d absolute', () => {
    assert.deepEqual(loadConfig({}).sessions, { idleMs: 12 * 3_600_000, maxMs: 7 * 86_400_000 });
    assert.deepEqual(loadConfig({ RUNWAY_SESSION_IDLE: '90s', RUNWAY_SESSION_MAX: '30m' }).sessions, {
      idleMs: 90_000,
      maxMs: 1_800_000,
    });
    assert.throws(() => loadConfig({ RUNWAY_SESSION_IDLE: '12 hours' }), /RUNWAY_SESSION_IDLE/);
    assert.throws(() => loadConfig({ RUNWAY_SESSION_IDLE: '8d' }), /not be longer than RUNWAY_SESSION_MAX/);
  });

  it('configures OpenID Connect with all three of issuer, client id and secret, and hides the secret', () => {
    assert.equal(loadConfig({}).oidc, null);
    const full = loadConfig({
      RUNWAY_OIDC_ISSUER: 'https://sso.example.com/realms/acme',
      RUNWAY_OIDC_CLIENT_ID: 'runway',
      RUNWAY_OIDC_CLIENT_SECRET: 's3cret',
    }).oidc;
    assert.deepEqual(full, {
      issuer: 'https://sso.example.com/realms/acme',
      clientId: 'runway',
      clientSecret: 's3cret',
      name: 'Single sign-on',
      autoCreate: false,
    });
    assert.throws(
      () => loadConfig({ RUNWAY_OIDC_ISSUER: 'https://sso.example.com', RUNWAY_OIDC_CLIENT_ID: 'x' }),
      (e: unknown) => e instanceof ConfigError && /all of RUNWAY_OIDC_ISSUER/.test(e.message),
    );
    try {
      loadConfig({ RUNWAY_OIDC_CLIENT_SECRET: 's3cret', RUNWAY_OIDC_AUTO_CREATE: 'maybe' });
      assert.fail('refused');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.ok(!e.message.includes('s3cret'));
    }
  });
});
