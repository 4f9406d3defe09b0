import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  connectNats,
  drainNats,
  natsClientOptions,
  redactUrl,
  startNatsCluster,
  type NatsClusterHandle,
  type NatsConnection,
} from './index.js';

/** Publishes with retries while the stream elects a new leader (bounded). */
async function publishRetrying(
  js: JetStreamClient,
  subject: string,
  data: string,
  id: string,
): Promise<number> {
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      return (await js.publish(subject, data, { msgID: id, timeout: 2_000 })).seq;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('startNatsCluster: 3 nats-servers clustered on loopback', { timeout: 120_000 }, () => {
  let dir: string;
  let cluster: NatsClusterHandle;
  let nc: NatsConnection;
  const stream = 'CLU';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runway-natscluster-'));
    cluster = await startNatsCluster({ nodes: 3, storeDir: dir });
    nc = await connectNats({ url: cluster.url, name: 'spec-cluster' });
  });
  after(async () => {
    if (nc) await drainNats(nc);
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists every node in the URL, each with its own store dir and the shared 0600 passwords', () => {
    assert.equal(cluster.nodes.length, 3);
    assert.equal(cluster.urls.length, 3);
    assert.deepEqual(
      natsClientOptions(cluster.url).servers,
      cluster.nodes.map((n) => `nats://127.0.0.1:${n.port}`),
    );
    assert.equal(new Set(cluster.nodes.map((n) => n.storeDir)).size, 3);
    const redacted = redactUrl(cluster.url);
    for (const secret of Object.values(cluster.credentials)) assert.ok(!redacted.includes(secret));
    assert.equal(redacted.split(',').length, 3);
    for (const user of ['runway', 'worker', 'admin', 'route']) {
      assert.equal(statSync(join(cluster.credentialsDir, user)).mode & 0o777, 0o600);
    }
    const route = readFileSync(join(cluster.credentialsDir, 'route'), 'utf8').trim();
    assert.ok(route.length >= 32);
    for (const n of cluster.nodes) {
      const conf = readFileSync(join(n.storeDir, 'nats-server.conf'), 'utf8');
      assert.match(conf, new RegExp(`server_name: "${n.name}"`));
      assert.equal(statSync(join(n.storeDir, 'nats-server.conf')).mode & 0o777, 0o600);
    }
  });

  it('refuses anonymous clients on every node, and lets each Runway user in', async () => {
    for (const anon of cluster.anonymousUrl.split(',')) {
      await assert.rejects(
        connect({ ...natsClientOptions(anon), reconnect: false, timeout: 3_000 }),
        /Authorization Violation/,
      );
    }
    for (const user of ['worker', 'admin'] as const) {
      const c = await connectNats({
        url: cluster.urlFor(user),
        name: `spec-${user}`,
        reconnectForever: false,
      });
      await drainNats(c);
    }
  });

  it('keeps an R3 stream writable through a SIGKILLed node, and the node rejoins and catches up', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: ['clu.>'], num_replicas: 3 });
    const js = jetstream(nc);
    for (let i = 0; i < 50; i++) await publishRetrying(js, `clu.a.${i % 5}`, `m${i}`, `a${i}`);
    let info = await jsm.streams.info(stream);
    assert.equal(info.config.num_replicas, 3);
    assert.equal(info.cluster?.replicas?.length, 2);

    // Kill the stream's leader: a new one is elected, and writes go on (the client moves to a live node).
    const leader = cluster.nodes.find((n) => n.name === info.cluster?.leader);
    assert.ok(leader, `leader ${info.cluster?.leader} among ${cluster.nodes.map((n) => n.name).join()}`);
    await leader.kill();
    const t0 = Date.now();
    for (let i = 50; i < 100; i++) await publishRetrying(js, `clu.a.${i % 5}`, `m${i}`, `a${i}`);
    const writeGapMs = Date.now() - t0;
    info = await jsm.streams.info(stream);
    assert.equal(info.state.messages, 100);
    assert.notEqual(info.cluster?.leader, leader.name);
    assert.ok(writeGapMs < 20_000, `50 writes around a leader loss took ${writeGapMs} ms`);

    await leader.restart();
    const until = Date.now() + 20_000;
    for (;;) {
      info = await jsm.streams.info(stream);
      const peer = info.cluster?.replicas?.find((r) => r.name === leader.name);
      if (peer?.current && !peer.offline) break;
      assert.ok(Date.now() < until, `node ${leader.name} did not catch up: ${JSON.stringify(info.cluster)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Writes go on after the rejoin; a resent message id is still a duplicate.
    const ack = await js.publish('clu.a.0', 'again', { msgID: 'a3' });
    assert.equal(ack.duplicate, true);
    await publishRetrying(js, 'clu.b', 'after', 'b0');
    assert.equal((await jsm.streams.info(stream)).state.messages, 101);
  });

  it('comes back whole after the whole cluster restarts, on the same ports and store dirs', async () => {
    const ports = cluster.nodes.map((n) => n.port);
    await cluster.restart();
    assert.deepEqual(
      cluster.nodes.map((n) => n.port),
      ports,
    );
    const jsm = await jetstreamManager(nc);
    const until = Date.now() + 20_000;
    for (;;) {
      try {
        const info = await jsm.streams.info(stream);
        assert.equal(info.state.messages, 101);
        break;
      } catch (err) {
        if (Date.now() > until) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await publishRetrying(jetstream(nc), 'clu.c', 'after-restart', 'c0');
    assert.equal((await jsm.streams.info(stream)).state.messages, 102);
  });
});
