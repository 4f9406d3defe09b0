import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ensureSecretFile } from '#libs/secrets';
import { CliError, findInstance } from './instance.js';

describe('findInstance: the embedded servers of a data dir', () => {
  const dir = mkdtempSync(join(tmpdir(), 'runway-instance-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { RUNWAY_DATA_DIR: dir, RUNWAY_NATS_PORT: '14999', RUNWAY_PG_PORT: '15999' };

  it('names the missing credential file instead of connecting with an empty password', () => {
    const instance = findInstance(env);
    assert.throws(
      () => instance.databaseUrl,
      (err: unknown) =>
        err instanceof CliError &&
        err.message.includes(join(dir, 'pg', 'credentials', 'runway')) &&
        err.message.includes('RUNWAY_DATA_DIR'),
    );
    assert.throws(() => instance.natsUrl, /no credentials in .*nats\/credentials\/admin/);
  });

  it('reads only the credentials a command uses', () => {
    ensureSecretFile(join(dir, 'nats', 'credentials', 'admin'));
    const instance = findInstance(env);
    assert.match(instance.natsUrl, /^nats:\/\/admin:[^@]+@127\.0\.0\.1:14999$/);
    assert.throws(() => instance.databaseUrl, CliError); // PostgreSQL's is still missing
    ensureSecretFile(join(dir, 'pg', 'credentials', 'runway'));
    assert.match(findInstance(env).databaseUrl, /^postgres:\/\/runway:[^@]+@127\.0\.0\.1:15999\/runway$/);
  });
});
