import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import {
  answers,
  durableConfig,
  runShop,
  secretDigest,
  seed,
  startDurable,
  waitForAnswers,
  wipeDatabase,
  type DurableStack,
} from './support.js';

describe('nothing lives only in PostgreSQL', () => {
  let env: TestEnvironment;
  let s: DurableStack | undefined;
  before(async () => {
    env = await createTestEnvironment({ ownNats: true });
  });
  after(async () => {
    await s?.stop();
    if (s) rmSync(s.dataDir, { recursive: true, force: true });
    await env.close();
  });

  it('drops every table and schema, restarts, and gets every read model and a working run with its secrets back', async () => {
    const config = await durableConfig(env.natsUrl, env.databaseUrl, env);
    s = await startDurable(config);
    await seed(s);
    const before = await answers(s);
    const runsPath = `/api/v1/workspaces/${s.workspaceId}/runs?limit=100`;
    assert.equal((before[runsPath] as { body: { items: unknown[] } }).body.items.length, 1);
    for (const [path, a] of Object.entries(before))
      assert.equal((a as { status: number }).status, 200, `${path}: ${JSON.stringify(a)}`);
    assert.match(JSON.stringify(before), /customers/, 'the pipeline read model has the tables dlt reported');
    await s.stop();

    await wipeDatabase(env.databaseUrl);

    s = await startDurable(config);
    await waitForAnswers(s, before);
    // A new run: the configuration's secrets are decrypted into its run dir from JetStream alone.
    const { run, logs } = await runShop(s);
    assert.equal(run.number, 2);
    assert.equal(run.configuration_version, 2);
    assert.match(logs, new RegExp(`secret digest ${secretDigest}`));
  });
});
