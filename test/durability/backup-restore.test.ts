import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunwayConfig } from '#libs/config';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { runwayCliPath } from '../support/cli.js';
import { run } from '../support/exec.js';
import {
  answers,
  durableConfig,
  runShop,
  secretDigest,
  seed,
  startDurable,
  waitForAnswers,
  type DurableStack,
} from './support.js';

/** `runway admin …` as a separate process, pointed at one install. */
function admin(config: RunwayConfig, databaseUrl: string, ...args: string[]) {
  return run(process.execPath, [runwayCliPath, 'admin', ...args], {
    env: {
      ...process.env,
      RUNWAY_DATA_DIR: config.dataDir,
      NATS_URL: config.nats.url ?? '',
      DATABASE_URL: databaseUrl,
      RUNWAY_EVENTS_STREAM: config.events.stream,
      RUNWAY_SUBJECT_PREFIX: config.events.subjectPrefix,
    },
  });
}

describe('runway admin backup / restore', () => {
  let envA: TestEnvironment;
  let envB: TestEnvironment | undefined;
  const stacks: DurableStack[] = [];
  const dirs: string[] = [];
  before(async () => {
    envA = await createTestEnvironment({ ownNats: true });
  });
  after(async () => {
    for (const s of stacks) await s.stop().catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await envB?.close();
    await envA.close();
  });

  it('backs up a running install and restores it into a fresh NATS, database and data dir: equal answers, a working run', async () => {
    const configA = await durableConfig(envA.natsUrl, envA.databaseUrl, envA);
    dirs.push(configA.dataDir);
    const a = await startDurable(configA);
    stacks.push(a);
    await seed(a);
    const expected = await answers(a);

    const dir = join(tmpdir(), `runway-backup-${randomBytes(4).toString('hex')}`);
    dirs.push(dir);
    const b1 = await admin(configA, envA.databaseUrl, 'backup', dir);
    assert.equal(b1.code, 0, b1.err + b1.out);
    assert.match(b1.out, new RegExp(`stream ${envA.stream}: \\d+ messages`));
    assert.match(b1.out, /stream OBJ_\w+_configurations/);
    assert.match(b1.out, /file master\.key/);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    // A backup never goes over another one.
    const again = await admin(configA, envA.databaseUrl, 'backup', dir);
    assert.equal(again.code, 2, again.err);
    await a.stop();
    stacks.pop();

    // A fresh install: another nats-server, an empty database, an empty data dir.
    envB = await createTestEnvironment({ ownNats: true });
    const dataDirB = mkdtempSync(join(tmpdir(), 'runway-restored-'));
    dirs.push(dataDirB);
    const configB = await durableConfig(envB.natsUrl, envB.databaseUrl, envA, dataDirB);
    const r = await admin(configB, envB.databaseUrl, 'restore', dir);
    assert.equal(r.code, 0, r.err + r.out);
    assert.equal(
      readFileSync(join(dataDirB, 'master.key'), 'utf8'),
      readFileSync(join(configA.dataDir, 'master.key'), 'utf8'),
    );
    assert.equal(statSync(join(dataDirB, 'master.key')).mode & 0o777, 0o600);
    // Restoring twice would mix two histories: refused.
    const twice = await admin(configB, envB.databaseUrl, 'restore', dir);
    assert.equal(twice.code, 2);
    assert.match(twice.err, /exist already/);

    const b = await startDurable(configB);
    stacks.push(b);
    await waitForAnswers(b, expected);
    const { run: second, logs } = await runShop(b);
    assert.equal(second.number, 2, 'run numbers continue from the restored log');
    assert.match(logs, new RegExp(`secret digest ${secretDigest}`));
  });
});
