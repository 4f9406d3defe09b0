import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '#libs/config';
import { createTestEnvironment, freePort, type TestEnvironment } from '#libs/testing';
import { startRunway, type RunningRunway } from '../../deploy/local/src/runway.js';

/** Restarts of one instance (same data dir, stream and database) with parts of its data dir lost. */
describe('first admin: decided on the event store, not by instance.json', () => {
  let env: TestEnvironment;
  let dataDir: string;
  let port: number;
  let grpcPort: number;
  let runway: RunningRunway | undefined;

  const start = async () => {
    runway = await startRunway(
      loadConfig({
        RUNWAY_DATA_DIR: dataDir,
        RUNWAY_HTTP_PORT: String(port),
        RUNWAY_GRPC_PORT: String(grpcPort),
        NATS_URL: env.natsUrl,
        DATABASE_URL: env.databaseUrl,
        RUNWAY_EVENTS_STREAM: env.stream,
        RUNWAY_SUBJECT_PREFIX: env.subjectPrefix,
        RUNWAY_LOG_LEVEL: 'error',
      }),
    );
    return runway;
  };
  const stop = async () => {
    await runway?.stop();
    runway = undefined;
  };
  const token = () => readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const users = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/admin/users`, {
      headers: { authorization: `Bearer ${token()}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { items: { id: string; email: string; admin: boolean }[] }).items;
  };

  before(async () => {
    env = await createTestEnvironment({ ownNats: true });
    dataDir = mkdtempSync(join(tmpdir(), 'runway-first-admin-'));
    port = await freePort();
    grpcPort = await freePort();
  });
  after(async () => {
    await stop();
    await env.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps the one first admin when instance.json and the token file are lost', async () => {
    const first = (await start()).admin;
    assert.equal(first.created, true);
    const instanceFile = readFileSync(join(dataDir, 'instance.json'), 'utf8');
    const firstToken = token();
    await stop();

    // instance.json lost (token kept): the same admin and workspace, the file written again.
    rmSync(join(dataDir, 'instance.json'));
    const second = (await start()).admin;
    assert.deepEqual(
      [second.adminUserId, second.defaultWorkspaceId, second.created],
      [first.adminUserId, first.defaultWorkspaceId, false],
    );
    assert.equal(readFileSync(join(dataDir, 'instance.json'), 'utf8'), instanceFile);
    assert.equal(token(), firstToken);
    await stop();

    // Both lost: still the same admin, with a new token for them; no second admin user.
    rmSync(join(dataDir, 'instance.json'));
    rmSync(join(dataDir, 'admin-token'));
    const third = (await start()).admin;
    assert.equal(third.adminUserId, first.adminUserId);
    assert.equal(third.defaultWorkspaceId, first.defaultWorkspaceId);
    assert.equal(third.created, true, 'a new token was written');
    assert.ok(existsSync(join(dataDir, 'instance.json')));
    assert.notEqual(token(), firstToken);
    const all = await users();
    assert.deepEqual(
      all.filter((u) => u.admin).map((u) => u.id),
      [first.adminUserId],
    );
    assert.equal(all.filter((u) => u.email === 'admin@runway.local').length, 1);
  });
});
