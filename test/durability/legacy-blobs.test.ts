import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { z } from 'zod';
import { integrationRegistry } from '#libs/contracts';
import { loadMasterKey } from '#libs/secrets';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { ConfigurationContentStore, materializeConfiguration } from '#libs/configuration-files';
import {
  CONFIG_FILES,
  durableConfig,
  PROD_SECRETS,
  SECRET,
  startDurable,
  upload,
  type DurableStack,
} from './support.js';

const configurationCreated = z.object({
  configurationId: z.string(),
  files: z.array(z.object({ blobId: z.string() })),
});

/** An install from before configuration contents moved to JetStream keeps its configurations. */
describe('configuration_blobs of an existing install', () => {
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

  it('are moved into the object store before migration 0002 drops the table', async () => {
    const config = await durableConfig(env.natsUrl, env.databaseUrl, env);
    s = await startDurable(config);
    const c = await upload(s, 'configurations', CONFIG_FILES);
    const ws = s.workspaceId;
    await s.stop();
    s = undefined;

    // Put the install back as it was before: the bytes in configuration_blobs, 0002 not applied.
    const store = env.newStore(integrationRegistry());
    const { commits } = await store.read({ workspaceId: ws, type: 'configuration', id: ws });
    const files = commits.flatMap((cm) =>
      cm.events.flatMap((e) => {
        const d = configurationCreated.safeParse(e.data);
        return d.success && d.data.configurationId === c.id ? d.data.files.map((f) => f.blobId) : [];
      }),
    );
    const blobs = await ConfigurationContentStore.open(env.nats, env.subjectPrefix);
    const stored = [...(await blobs.get(ws, c.id as string, files)).values()];
    assert.equal(stored.length, 2);
    await blobs.discard(ws, files);
    assert.equal((await blobs.get(ws, c.id as string, files)).size, 0);
    const client = new pg.Client({ connectionString: env.databaseUrl });
    await client.connect();
    await client.query(`
      CREATE TABLE configuration_blobs (
        id uuid PRIMARY KEY, workspace_id uuid NOT NULL, configuration_id uuid NOT NULL,
        version integer NOT NULL, path text NOT NULL, encrypted boolean NOT NULL, key_id text,
        content bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
    for (const b of stored)
      await client.query(
        'INSERT INTO configuration_blobs (id, workspace_id, configuration_id, version, path, encrypted, key_id, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
        [b.id, b.workspaceId, b.configurationId, b.version, b.path, b.keyId !== null, b.keyId, b.content],
      );
    await client.query(`DELETE FROM migrations_configurations WHERE name = '0002_drop_configuration_blobs'`);

    s = await startDurable(config);
    const left = await client.query<{ t: string | null }>(
      `SELECT to_regclass('configuration_blobs')::text AS t`,
    );
    await client.end();
    assert.equal(left.rows[0]!.t, null, 'the table is dropped');
    const m = await materializeConfiguration(
      { store, blobs, masterKey: loadMasterKey({ dataDir: s.dataDir }) },
      ws,
      c.id as string,
      'prod',
    );
    assert.equal(m.files.find((f) => f.path === 'prod.secrets.toml')!.content.toString(), PROD_SECRETS);
    assert.ok(m.secretValues.includes(SECRET));
  });
});
