/**
 * JetStream's fsync interval in the configuration Runway writes (RUNWAY_NATS_SYNC_INTERVAL): the
 * rendering, the refusal of bad values, and what a real nats-server makes of it (its /varz).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { z } from 'zod';
import { ConfigError, loadConfig } from '#libs/config';
import { ensureNatsCredentials, natsServerConfig, natsSyncInterval } from './auth.js';
import { freePort, natsServerBinary, waitForPort } from './nats-server.js';

const varzSchema = z.object({
  jetstream: z.object({
    config: z.object({ sync_interval: z.number(), sync_always: z.boolean().optional() }),
  }),
});

/** Starts nats-server on the rendered configuration with monitoring on, and returns its JetStream config. */
async function jetstreamConfigOf(dir: string, syncInterval: string | null) {
  const port = await freePort();
  const monitor = await freePort();
  const storeDir = join(dir, `store-${port}`);
  const conf = join(dir, `nats-${port}.conf`);
  writeFileSync(
    conf,
    natsServerConfig({
      host: '127.0.0.1',
      port,
      storeDir,
      credentials: ensureNatsCredentials(join(dir, 'credentials')),
      syncInterval,
    }),
  );
  const proc = spawn(natsServerBinary(), ['-c', conf, '-m', String(monitor)], { stdio: 'ignore' });
  try {
    await waitForPort(monitor);
    const res = await fetch(`http://127.0.0.1:${monitor}/varz`);
    return varzSchema.parse(await res.json()).jetstream.config;
  } finally {
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  }
}

describe('RUNWAY_NATS_SYNC_INTERVAL (jetstream sync_interval)', { timeout: 30_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'runway-sync-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const base = {
    host: '127.0.0.1',
    port: 4222,
    storeDir: '/data/nats',
    credentials: { runway: 'a', worker: 'b', admin: 'c' },
  };

  it('accepts `always` and Go durations, refuses anything else precisely', () => {
    assert.equal(natsSyncInterval(undefined), undefined);
    assert.equal(natsSyncInterval(''), undefined);
    for (const ok of ['always', '10s', '2m', '1m30s', '500ms', '1.5h'])
      assert.equal(natsSyncInterval(ok), ok);
    for (const bad of ['ALWAYS', '10', 'soon', '-1s', '0s', '10 s', '2m; store_dir: "/"', '"always"']) {
      assert.throws(
        () => natsSyncInterval(bad),
        /RUNWAY_NATS_SYNC_INTERVAL=.*must be `always` or a positive duration/,
      );
    }
  });

  it('is checked with the rest of the configuration at start (npm start exits 2 naming it)', () => {
    assert.doesNotThrow(() => loadConfig({ RUNWAY_NATS_SYNC_INTERVAL: 'always' }));
    assert.doesNotThrow(() => loadConfig({ RUNWAY_NATS_SYNC_INTERVAL: '' }));
    assert.throws(
      () => loadConfig({ RUNWAY_NATS_SYNC_INTERVAL: 'soon' }),
      (err: unknown) =>
        err instanceof ConfigError && /RUNWAY_NATS_SYNC_INTERVAL="soon": must be `always`/.test(err.message),
    );
  });

  it('renders it in the jetstream block; unset leaves the server default', () => {
    assert.match(
      natsServerConfig({ ...base, syncInterval: 'always' }),
      /^jetstream \{ store_dir: "\/data\/nats", sync_interval: "always" \}$/m,
    );
    assert.match(
      natsServerConfig({ ...base, syncInterval: null }),
      /^jetstream \{ store_dir: "\/data\/nats" \}$/m,
    );
    assert.throws(() => natsServerConfig({ ...base, syncInterval: 'often' }), /RUNWAY_NATS_SYNC_INTERVAL/);
  });

  it('takes RUNWAY_NATS_SYNC_INTERVAL from the environment by default', () => {
    const saved = process.env.RUNWAY_NATS_SYNC_INTERVAL;
    try {
      process.env.RUNWAY_NATS_SYNC_INTERVAL = '30s';
      assert.match(natsServerConfig(base), /sync_interval: "30s"/);
      process.env.RUNWAY_NATS_SYNC_INTERVAL = 'whenever';
      assert.throws(() => natsServerConfig(base), /RUNWAY_NATS_SYNC_INTERVAL="whenever"/);
      delete process.env.RUNWAY_NATS_SYNC_INTERVAL;
      assert.doesNotMatch(natsServerConfig(base), /sync_interval/);
    } finally {
      if (saved === undefined) delete process.env.RUNWAY_NATS_SYNC_INTERVAL;
      else process.env.RUNWAY_NATS_SYNC_INTERVAL = saved;
    }
  });

  it('a real nats-server syncs on every write with `always`, on the interval given, else every 2 minutes', async () => {
    assert.equal((await jetstreamConfigOf(dir, 'always')).sync_always, true);
    const tenSeconds = await jetstreamConfigOf(dir, '10s');
    assert.equal(tenSeconds.sync_interval, 10e9);
    assert.notEqual(tenSeconds.sync_always, true);
    const byDefault = await jetstreamConfigOf(dir, null);
    assert.equal(byDefault.sync_interval, 120e9);
    assert.notEqual(byDefault.sync_always, true);
  });
});
