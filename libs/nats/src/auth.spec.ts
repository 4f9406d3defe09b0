import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { connectNats, drainNats, natsClientOptions, redactUrl, type NatsConnection } from './index.js';
import type { NatsAuth } from '#libs/config';
import {
  freePort,
  natsServerBinary,
  startNatsServer,
  waitForPort,
  type NatsServerHandle,
} from './nats-server.js';

/** Resolves with the error a promise rejects with (fails when it resolves, or with another message). */
async function rejection(p: Promise<unknown>, message = /Permissions Violation/): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof Error, String(err));
    assert.match(err.message, message);
    return err;
  }
  assert.fail('expected a rejection');
}

const refused = (url: string) =>
  rejection(
    connect({ ...natsClientOptions(url), reconnect: false, timeout: 3_000 }),
    /Authorization Violation/,
  );

describe('nats-server with authentication (locked core)', () => {
  let dir: string;
  let server: NatsServerHandle;
  let runway: NatsConnection;
  let worker: NatsConnection;
  let admin: NatsConnection;
  const ws = 'w0000000000000001';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runway-natsauth-'));
    server = await startNatsServer({ storeDir: dir, scope: { stream: 'EVENTS', subjectPrefix: '' } });
    runway = await connectNats({ url: server.url, name: 'spec-runway' });
    worker = await connectNats({ url: server.urlFor('worker'), name: 'spec-worker' });
    admin = await connectNats({ url: server.urlFor('admin'), name: 'spec-admin' });
    await jetstreamManager(runway).then((jsm) =>
      jsm.streams.add({ name: 'EVENTS', subjects: ['evt.>'], allow_direct: true }),
    );
  });
  after(async () => {
    for (const nc of [worker, admin, runway]) if (nc) await drainNats(nc);
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses anonymous clients, wrong passwords and guessed defaults', async () => {
    assert.match((await refused(server.anonymousUrl)).message, /Authorization/);
    const wrong = new URL(server.url);
    wrong.password = 'not-the-password';
    assert.match((await refused(wrong.toString())).message, /Authorization Violation/i);
    for (const guess of ['runway:runway', 'admin:admin', 'worker:worker', 'nats:nats'])
      assert.match(
        (await refused(server.anonymousUrl.replace('nats://', `nats://${guess}@`))).message,
        /Authorization Violation/i,
      );
    // A token in place of a user.
    assert.match(
      (await refused(server.anonymousUrl.replace('nats://', 'nats://runway@'))).message,
      /Authorization Violation/i,
    );
  });

  it('keeps every password in a 0600 file in a 0700 directory, and the same ones after a restart', async () => {
    assert.equal(statSync(server.credentialsDir).mode & 0o777, 0o700);
    for (const user of ['runway', 'worker', 'admin'] as const) {
      const file = join(server.credentialsDir, user);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(readFileSync(file, 'utf8').trim(), server.credentials[user]);
      assert.ok(server.credentials[user].length >= 32);
    }
    assert.equal(statSync(join(dir, 'nats-server.conf')).mode & 0o777, 0o600);
    assert.ok(!redactUrl(server.url).includes(server.credentials.runway));
    const before = { ...server.credentials };
    const again = await startNatsServer({
      storeDir: join(dir, 'second'),
      credentialsDir: server.credentialsDir,
    });
    try {
      assert.deepEqual({ ...again.credentials }, before);
      const nc = await connectNats({ url: again.url, name: 'spec-again' });
      await drainNats(nc);
    } finally {
      await again.stop();
    }
  });

  it('lets the worker append to a run, and nothing else on evt.>', async () => {
    const js = jetstream(worker, { timeout: 2_000 });
    const ack = await js.publish(`evt.${ws}.run.r1`, '{}');
    assert.ok(ack.seq > 0);
    for (const forged of [`evt.${ws}.workspace.${ws}`, `evt.${ws}.user.u1`, `evt.${ws}.job.j1`, 'evt.x'])
      await rejection(js.publish(forged, '{"forged":true}'));
    // A plain (core) publish is dropped by the server too: nothing of it reaches the stream.
    worker.publish(`evt.${ws}.workspace.${ws}`, '{"forged":true}');
    await worker.flush();
    const jsm = await jetstreamManager(runway);
    const info = await jsm.streams.info('EVENTS', { subjects_filter: 'evt.>' });
    assert.deepEqual(Object.keys(info.state.subjects ?? {}), [`evt.${ws}.run.r1`]);
  });

  it('keeps the worker away from the stream configuration, other buckets and the services', async () => {
    const jsm = await jetstreamManager(runway);
    const kv = await new Kvm(runway).create('EVENTS_device_codes');
    await kv.put('code1', 'secret-device-code');
    const wjsm = await jetstreamManager(worker, { timeout: 2_000 });
    await rejection(wjsm.streams.delete('EVENTS'));
    await rejection(wjsm.streams.update('EVENTS', { subjects: ['evt.>', 'other.>'] }));
    await rejection(wjsm.streams.purge('EVENTS'));
    await rejection(wjsm.streams.add({ name: 'MINE', subjects: ['mine.>'] }));
    await rejection(wjsm.streams.info('KV_EVENTS_device_codes'));
    await rejection(
      wjsm.direct.getMessage('KV_EVENTS_device_codes', { last_by_subj: '$KV.EVENTS_device_codes.code1' }),
    );
    await rejection(new Kvm(worker).open('EVENTS_device_codes').then((k) => k.get('code1')));
    await rejection(worker.request('runway.health.gateway', '', { timeout: 1_000 }));
    // And the stream is as it was.
    assert.deepEqual((await jsm.streams.info('EVENTS')).config.subjects, ['evt.>']);
  });

  it('lets the admin read and ask, never publish an event', async () => {
    const jsm = await jetstreamManager(admin, { timeout: 2_000 });
    assert.equal((await jsm.streams.info('EVENTS')).config.name, 'EVENTS');
    const js = jetstream(admin, { timeout: 2_000 });
    await rejection(js.publish(`evt.${ws}.workspace.${ws}`, '{"forged":true}'));
    await rejection(jsm.streams.delete('EVENTS'));
    // The services' request subjects are open to it (projections status, rebuild).
    const sub = runway.subscribe('runway.health.gateway', { callback: (_e, m) => void m.respond('ok') });
    await runway.flush();
    assert.equal((await admin.request('runway.health.gateway', '', { timeout: 2_000 })).string(), 'ok');
    sub.unsubscribe();
  });
});

describe('NATS URLs with credentials', () => {
  it('splits user/password or a token off the URL; explicit credentials win', () => {
    assert.deepEqual(natsClientOptions('nats://svc:p%40ss@h:4222'), {
      servers: ['nats://h:4222'],
      user: 'svc',
      pass: 'p@ss',
    });
    assert.deepEqual(natsClientOptions('nats://s3cret@h:4222'), {
      servers: ['nats://h:4222'],
      token: 's3cret',
    });
    assert.deepEqual(natsClientOptions('nats://h:4222'), { servers: ['nats://h:4222'] });
    assert.deepEqual(natsClientOptions('nats://a:b@h:4222', { kind: 'token', token: 't' }), {
      servers: ['nats://h:4222'],
      token: 't',
    });
    assert.equal(redactUrl('nats://svc:p%40ss@h:4222'), 'nats://svc:***@h:4222');
    assert.equal(redactUrl('nats://s3cret@h:4222'), 'nats://***@h:4222');
  });

  it('takes a comma-separated list of servers, with the credentials of the first URL that has some', () => {
    assert.deepEqual(natsClientOptions('nats://h1:4222, nats://svc:pw@h2:4222,nats://other:x@h3:4222'), {
      servers: ['nats://h1:4222', 'nats://h2:4222', 'nats://h3:4222'],
      user: 'svc',
      pass: 'pw',
    });
    assert.deepEqual(
      natsClientOptions('nats://h1:4222,nats://h2:4222', { kind: 'user', user: 'u', password: 'p' }),
      {
        servers: ['nats://h1:4222', 'nats://h2:4222'],
        user: 'u',
        pass: 'p',
      },
    );
    assert.equal(
      redactUrl('nats://svc:pw@h1:4222,nats://svc:pw@h2:4222'),
      'nats://svc:***@h1:4222,nats://svc:***@h2:4222',
    );
  });
});

describe('an external nats-server with its own credentials (NATS_URL, NATS_USER/NATS_PASSWORD, NATS_TOKEN)', () => {
  async function external(args: string[]): Promise<{ url: string; stop: () => Promise<void> }> {
    const port = await freePort();
    const proc = spawn(natsServerBinary(), ['-a', '127.0.0.1', '-p', String(port), ...args], {
      stdio: 'ignore',
    });
    await waitForPort(port);
    return {
      url: `nats://127.0.0.1:${port}`,
      stop: () =>
        new Promise<void>((resolve) => {
          proc.once('exit', () => resolve());
          proc.kill('SIGTERM');
        }),
    };
  }
  const works = async (url: string, auth?: NatsAuth) => {
    const nc = await connectNats({ url, auth, name: 'spec-external', reconnectForever: false });
    await nc.flush();
    await drainNats(nc);
  };

  it('connects with a user and password in the URL or beside it', async () => {
    const s = await external(['--user', 'svc', '--pass', 'p@ss:w/rd']);
    try {
      await works(s.url.replace('nats://', `nats://svc:${encodeURIComponent('p@ss:w/rd')}@`));
      await works(s.url, { kind: 'user', user: 'svc', password: 'p@ss:w/rd' });
      await refused(s.url);
      await refused(s.url.replace('nats://', 'nats://svc:wrong@'));
    } finally {
      await s.stop();
    }
  });

  it('connects with a token in the URL or beside it', async () => {
    const s = await external(['--auth', 's3cret-token']);
    try {
      await works(s.url.replace('nats://', 'nats://s3cret-token@'));
      await works(s.url, { kind: 'token', token: 's3cret-token' });
      await refused(s.url);
    } finally {
      await s.stop();
    }
  });
});
