import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import {
  connectNats,
  drainNats,
  startDurableConsumer,
  startNatsServer,
  type NatsConnection,
} from './index.js';
import type { NatsServerHandle } from './nats-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
const text = (m: JsMsg) => new TextDecoder().decode(m.data);

describe('durable consumer (real nats-server with its users)', () => {
  let dir: string;
  let server: NatsServerHandle;
  let runway: NatsConnection;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runway-durable-'));
    server = await startNatsServer({ storeDir: dir });
    runway = await connectNats({ url: server.url, name: 'runway' });
    const jsm = await jetstreamManager(runway);
    await jsm.streams.add({ name: 'EVENTS', subjects: ['evt.>'] });
  });
  after(async () => {
    await drainNats(runway);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('handles in order, retries a failure later, terminates garbage, and stops after the message in hand', async () => {
    const js = jetstream(runway);
    for (const body of ['one', 'garbage', 'flaky', 'four']) await js.publish('evt.w.doc.a', body);
    const seen: string[] = [];
    const logs: string[] = [];
    let flaky = 0;
    const c = await startDurableConsumer({
      nc: runway,
      stream: 'EVENTS',
      durable: 'docs',
      filterSubjects: ['evt.*.doc.*'],
      retryDelayMs: 100,
      log: (l) => logs.push(l),
      handle: async (m) => {
        const t = text(m);
        if (t === 'garbage') return 'term';
        if (t === 'flaky' && flaky++ === 0) throw new Error('not yet');
        seen.push(t);
      },
    });
    await until('all but garbage', () => seen.length >= 3);
    await c.stop();
    assert.deepEqual(seen, ['one', 'four', 'flaky'], 'the failed one came back after the next');
    assert.ok(logs.some((l) => /docs: handling message \d+ failed \(retried in 100 ms\): not yet/.test(l)));
    const ci = await (await jetstreamManager(runway)).consumers.info('EVENTS', 'docs');
    assert.deepEqual([ci.num_pending, ci.num_ack_pending], [0, 0]);
  });

  it('works with the worker user’s permissions, and moves its filter in place', async () => {
    const worker = await connectNats({ url: server.urlFor('worker'), name: 'worker' });
    try {
      const js = jetstream(runway);
      await js.publish('evt.w.job.j1', 'requested');
      const got: string[] = [];
      const opts = {
        nc: worker,
        stream: 'EVENTS',
        durable: 'claims',
        handle: async (m: JsMsg) => void got.push(`${m.subject} ${text(m)}`),
      };
      const c = await startDurableConsumer({ ...opts, filterSubjects: ['evt.*.job.*'] });
      await until('the request', () => got.length >= 1);
      await c.stop();
      // Its filter moves in place (the position is kept).
      const c2 = await startDurableConsumer({ ...opts, filterSubjects: ['evt.*.job.*', 'evt.*.run.*'] });
      await js.publish('evt.w.run.r1', 'skipped');
      await js.publish('evt.w.job.j1', 'again');
      await until('both new ones', () => got.length >= 3);
      await c2.stop();
      const ci = await (await jetstreamManager(runway)).consumers.info('EVENTS', 'claims');
      assert.deepEqual(ci.config.filter_subjects, ['evt.*.job.*', 'evt.*.run.*'], 'the same durable, moved');
      assert.deepEqual(got, ['evt.w.job.j1 requested', 'evt.w.run.r1 skipped', 'evt.w.job.j1 again']);
    } finally {
      await drainNats(worker);
    }
  });
});
