import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { sql } from 'kysely';
import { buildPackage } from '#libs/archive';
import type { Configuration } from '#libs/client';
import { integrationRegistry } from '#libs/contracts';
import { isSealed, loadMasterKey } from '#libs/secrets';
import { Objm } from '@nats-io/obj';
import { z } from 'zod';
import {
  configurationBucketName,
  ConfigurationContentStore,
  materializeConfiguration,
} from '#libs/configuration-files';
import { newUser } from '../jobs/support.js';
import { startTestStack, type TestStack } from '../support/stack.js';

/** The client's Configuration with what the detail and upload responses add. */
type ConfigurationBody = Required<Configuration> & {
  files: { path: string; kind: string; profile: string | null; encrypted: boolean; keys: string[] }[];
  created?: boolean;
};
interface ErrorBody {
  status_code: number;
  detail: string;
}

type Files = Record<string, string>;

const configurationCreated = z.object({
  configurationId: z.string(),
  files: z.array(z.object({ blobId: z.string() })),
});

function tarball(files: Files): Buffer {
  return buildPackage(Object.entries(files).map(([path, content]) => ({ path, content })));
}

describe('configurations (whole stack)', () => {
  let stack: TestStack;
  let ws: string;
  const captured: string[] = [];
  const originalWrite = {
    out: process.stdout.write.bind(process.stdout),
    err: process.stderr.write.bind(process.stderr),
  };
  // Everything the process logs while the stack runs, to prove no secret value reaches a log.
  const tap = (orig: typeof process.stdout.write) =>
    ((chunk: unknown, ...rest: unknown[]) => {
      captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return (orig as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;

  const upload = async (
    files: Files | Buffer,
    opts: { path?: string; token?: string | null; filename?: string; field?: string } = {},
  ) => {
    const body = Buffer.isBuffer(files) ? files : tarball(files);
    const form = new FormData();
    form.append(
      opts.field ?? 'file',
      new Blob([body], { type: 'application/x-tar' }),
      opts.filename ?? 'configurations.tar.gz',
    );
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? stack.adminToken : opts.token;
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${stack.url}/api/v1/workspaces/${ws}/configurations${opts.path ?? ''}`, {
      method: 'POST',
      body: form,
      headers,
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, text, json };
  };
  const get = (path: string, token?: string | null) =>
    stack.call('GET', `/api/v1/workspaces/${ws}/configurations${path}`, undefined, token);

  before(async () => {
    process.stdout.write = tap(originalWrite.out);
    process.stderr.write = tap(originalWrite.err);
    stack = await startTestStack({ RUNWAY_LOG_LEVEL: 'verbose' });
    ws = stack.workspaceId;
  });
  after(async () => {
    process.stdout.write = originalWrite.out;
    process.stderr.write = originalWrite.err;
    await stack.stop();
  });

  it('answers 404 for latest before any upload, and an empty list', async () => {
    const latest = await get('/latest');
    assert.equal(latest.status, 404);
    assert.match((latest.json as ErrorBody).detail, /no configuration/);
    const list = await get('?limit=100&offset=0');
    assert.equal(list.status, 200);
    assert.deepEqual(list.json, { items: [], limit: 100, offset: 0, total: 0 });
  });

  it('creates numbered versions with profiles, key names and warnings', async () => {
    const first = await upload({
      'config.toml': '[runtime]\nlog_level = "WARNING"\n',
      'secrets.toml': '[sources.notion]\napi_key = "default-key-value"\n',
      'prod.secrets.toml':
        '[destination.postgres.credentials]\npassword = "prod-password-value"\nhost = "db.internal"\n',
    });
    assert.equal(first.status, 201, first.text);
    const c1 = first.json as ConfigurationBody;
    assert.equal(c1.version, 1);
    assert.equal(c1.workspace_id, ws);
    assert.equal(c1.file_count, 3);
    assert.equal(c1.profiles, 'default,prod');
    assert.match(c1.content_hash, /^[A-Za-z0-9+/]{43}=$/);
    assert.equal(typeof c1.file_names, 'string');
    for (const f of ['config.toml', 'secrets.toml', 'prod.secrets.toml'])
      assert.ok(c1.file_names.includes(f));
    assert.ok(c1.size > 0);
    assert.match(c1.created_by, /^[0-9a-f-]{36}$/);
    assert.ok(!Number.isNaN(Date.parse(c1.date_added)));
    assert.deepEqual(c1.profile_keys, {
      default: ['runtime.log_level', 'sources.notion.api_key'],
      prod: ['destination.postgres.credentials.host', 'destination.postgres.credentials.password'],
    });
    assert.equal(c1.warnings.length, 1);
    assert.match(c1.warnings[0]!, /"access" is not defined.*fall back to profile prod/);
    assert.deepEqual(
      c1.files.map((f) => [f.path, f.kind, f.profile, f.encrypted]),
      [
        ['config.toml', 'config', 'default', false],
        ['prod.secrets.toml', 'secrets', 'prod', true],
        ['secrets.toml', 'secrets', 'default', true],
      ],
    );
    for (const v of ['default-key-value', 'prod-password-value', 'db.internal'])
      assert.equal(first.text.includes(v), false, `${v} in response`);

    const second = await upload({
      'config.toml': 'x = 1\n',
      'access.secrets.toml': 'token = "abcd-access"\n',
    });
    assert.equal(second.status, 201, second.text);
    const c2 = second.json as ConfigurationBody;
    assert.equal(c2.version, 2);
    assert.equal(c2.profiles, 'default,access');
    assert.equal(c2.warnings.length, 1);
    assert.match(c2.warnings[0]!, /"prod" is not defined/);

    // The compatible POST always creates a version, even for the same content.
    const third = await upload({
      'config.toml': 'x = 1\n',
      'access.secrets.toml': 'token = "abcd-access"\n',
    });
    assert.equal((third.json as ConfigurationBody).version, 3);
    assert.equal((third.json as ConfigurationBody).content_hash, c2.content_hash);

    const list = await get('?limit=100&offset=0');
    assert.equal(list.status, 200);
    const page = list.json as { items: ConfigurationBody[]; total: number; limit: number; offset: number };
    assert.deepEqual(
      page.items.map((i) => i.version),
      [3, 2, 1],
    );
    assert.equal(page.total, 3);
    const paged = (await get('?limit=1&offset=1')).json as { items: ConfigurationBody[]; total: number };
    assert.deepEqual(
      paged.items.map((i) => i.version),
      [2],
    );
    assert.equal(paged.total, 3);

    const latest = await get('/latest');
    assert.equal(latest.status, 200);
    assert.equal((latest.json as ConfigurationBody).version, 3);
    const byId = await get(`/${c1.id}`);
    assert.equal(byId.status, 200);
    assert.deepEqual(byId.json, c1);
    const byVersion = await get('/2');
    assert.equal((byVersion.json as ConfigurationBody).id, c2.id);
    assert.equal((await get('/99')).status, 404);
    assert.equal((await get('/00000000-0000-4000-8000-000000000000')).status, 404);
    assert.equal((await get('/nope')).status, 404);
  });

  it('syncs: the same content returns the latest without a new version', async () => {
    const same = await upload(
      { 'config.toml': 'x = 1\n', 'access.secrets.toml': 'token = "abcd-access"\n' },
      { path: '/sync' },
    );
    assert.equal(same.status, 200, same.text);
    assert.equal((same.json as ConfigurationBody).version, 3);
    assert.equal((same.json as ConfigurationBody).created, false);
    const changed = await upload({ 'config.toml': 'x = 2\n' }, { path: '/sync' });
    assert.equal(changed.status, 201, changed.text);
    assert.equal((changed.json as ConfigurationBody).version, 4);
    assert.equal((changed.json as ConfigurationBody).created, true);
    assert.deepEqual((changed.json as ConfigurationBody).warnings.length, 2);
  });

  it('refuses malformed TOML with a 400 naming file and line, and stores nothing', async () => {
    const before = ((await get('')).json as { total: number }).total;
    const r = await upload({
      'config.toml': 'ok = 1\n',
      'prod.secrets.toml': '[a]\nb = 1\npassword = "sk_unterminated_value\n',
    });
    assert.equal(r.status, 400, r.text);
    const body = r.json as ErrorBody;
    assert.equal(body.status_code, 400);
    assert.match(body.detail, /^prod\.secrets\.toml: line 3, column \d+: /);
    assert.equal(r.text.includes('sk_unterminated_value'), false);
    const other = await upload({ 'config.toml': 'a = 1\n', 'pipeline.py': 'print(1)\n' });
    assert.equal(other.status, 400);
    assert.match((other.json as ErrorBody).detail, /pipeline\.py: not a configuration file/);
    const notTar = await upload(Buffer.from('this is not a tarball'));
    assert.equal(notTar.status, 400);
    const noPart = await upload({ 'config.toml': 'a = 1\n' }, { field: 'other' });
    assert.equal(noPart.status, 400);
    assert.match((noPart.json as ErrorBody).detail, /"file"/);
    const json = await stack.call('POST', `/api/v1/workspaces/${ws}/configurations`, { file: 'x' });
    assert.equal(json.status, 400);
    const tooBig = await upload(randomBytes(1024 * 1024 + 10));
    assert.equal(tooBig.status, 400);
    assert.match((tooBig.json as ErrorBody).detail, /too large/);
    assert.equal(((await get('')).json as { total: number }).total, before);
  });

  it('lets members read, viewers only read, and others nothing', async () => {
    const mkUser = async (email: string, role?: 'viewer' | 'member') =>
      (await newUser(stack, email, role)).token;
    const viewer = await mkUser('viewer@example.com', 'viewer');
    const member = await mkUser('member@example.com', 'member');
    const outsider = await mkUser('outsider@example.com');
    assert.equal((await get('/latest', viewer)).status, 200);
    assert.equal((await get('', viewer)).status, 200);
    const denied = await upload({ 'config.toml': 'a = 1\n' }, { token: viewer });
    assert.equal(denied.status, 403, denied.text);
    const ok = await upload({ 'config.toml': 'a = 1\n' }, { token: member });
    assert.equal(ok.status, 201, ok.text);
    for (const path of ['', '/latest', '/1']) assert.equal((await get(path, outsider)).status, 404);
    assert.equal((await upload({ 'config.toml': 'a = 1\n' }, { token: outsider })).status, 404);
    // The outsider's own workspace sees none of ours.
    const own = await stack.call('POST', '/api/v1/workspaces', { name: 'elsewhere' }, outsider, {
      'idempotency-key': `ws-${randomBytes(4).toString('hex')}`,
    });
    assert.equal(own.status, 201, own.text);
    // (The new workspace's read model may lag its creation by a moment.)
    const theirsPath = `/api/v1/workspaces/${(own.json as { id: string }).id}/configurations`;
    let theirs = await stack.call('GET', theirsPath, undefined, outsider);
    for (let i = 0; i < 50 && theirs.status === 404; i++) {
      await new Promise((r) => setTimeout(r, 100));
      theirs = await stack.call('GET', theirsPath, undefined, outsider);
    }
    assert.equal(theirs.status, 200, theirs.text);
    assert.equal((theirs.json as { total: number }).total, 0);
    assert.equal((await get('', null)).status, 401);
  });

  it('numbers concurrent uploads without gaps and keeps no files of lost races', async () => {
    const before = ((await get('/latest')).json as ConfigurationBody).version;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        upload({ 'config.toml': `n = ${i}\n`, 'prod.secrets.toml': `k = "v${i}"\n` }),
      ),
    );
    for (const r of results) assert.equal(r.status, 201, r.text);
    const versions = results.map((r) => (r.json as ConfigurationBody).version).sort((a, b) => a - b);
    assert.deepEqual(
      versions,
      [1, 2, 3, 4, 5, 6].map((n) => before + n),
    );
    const all = (await get('?limit=1000')).json as { items: ConfigurationBody[] };
    const listed = all.items.map((i) => i.version);
    assert.deepEqual(
      listed,
      Array.from({ length: listed.length }, (_, i) => listed.length - i),
    );
    // No stored file is left without its version (the losers of the races discarded theirs).
    const db = stack.env.newDb<unknown>();
    const ids = new Set(
      (await sql<{ id: string }>`SELECT id::text AS id FROM configurations`.execute(db)).rows.map(
        (r) => r.id,
      ),
    );
    const os = await new Objm(stack.env.nats).open(configurationBucketName(stack.env.subjectPrefix));
    const objects = (await os.list()).filter((o) => !o.deleted);
    assert.ok(objects.length > 6);
    for (const o of objects) assert.ok(ids.has(o.metadata?.configurationId ?? ''), `orphan ${o.name}`);
  });

  it('returns the original version for a retried request with the same Idempotency-Key', async () => {
    const key = `idem-${randomBytes(4).toString('hex')}`;
    const form = () => {
      const f = new FormData();
      f.append('file', new Blob([tarball({ 'config.toml': 'idem = 1\n' })]), 'configurations.tar.gz');
      return f;
    };
    const post = () =>
      fetch(`${stack.url}/api/v1/workspaces/${ws}/configurations`, {
        method: 'POST',
        body: form(),
        headers: { authorization: `Bearer ${stack.adminToken}`, 'idempotency-key': key },
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as ConfigurationBody }));
    const a = await post();
    const b = await post();
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    assert.equal(b.body.id, a.body.id);
    assert.equal(b.body.version, a.body.version);
  });

  it('materializes a version for a run profile with the fallbacks, decrypting secrets only there', async () => {
    const r = await upload({
      'config.toml': 'a = 1\n',
      'secrets.toml': 'base = "base-secret-1"\n',
      'prod.secrets.toml': 'p = "prod-secret-1"\n',
      'prod.config.toml': 'pc = 1\n',
      'dev.secrets.toml': 'd = "dev-secret-1"\n',
    });
    assert.equal(r.status, 201, r.text);
    const c = r.json as ConfigurationBody;
    const deps = {
      store: stack.env.newStore(integrationRegistry()),
      blobs: await ConfigurationContentStore.open(stack.env.nats, stack.env.subjectPrefix),
      masterKey: loadMasterKey({ dataDir: stack.dataDir }),
    };
    const prod = await materializeConfiguration(deps, ws, c.version, 'prod');
    assert.equal(prod.profile, 'prod');
    assert.deepEqual(prod.files.map((f) => f.path).sort(), [
      'config.toml',
      'prod.config.toml',
      'prod.secrets.toml',
      'secrets.toml',
    ]);
    const text = (p: string) => prod.files.find((f) => f.path === p)!.content.toString();
    assert.equal(text('prod.secrets.toml'), 'p = "prod-secret-1"\n');
    assert.equal(text('secrets.toml'), 'base = "base-secret-1"\n');
    assert.equal(prod.files.find((f) => f.path === 'prod.secrets.toml')!.mode, 0o600);
    assert.equal(prod.files.find((f) => f.path === 'config.toml')!.mode, 0o644);
    assert.deepEqual(prod.secretValues.sort(), ['base-secret-1', 'prod-secret-1']);
    // access is missing: falls back to prod, never sees dev.
    const access = await materializeConfiguration(deps, ws, c.id, 'access');
    assert.equal(access.profile, 'prod');
    assert.match(access.warnings[0]!, /"access" is not defined/);
    assert.equal(
      access.files.some((f) => f.path.startsWith('dev.')),
      false,
    );
    // A profile without files gets the default files only.
    const tests = await materializeConfiguration(deps, ws, c.version, 'tests');
    assert.deepEqual(tests.files.map((f) => f.path).sort(), ['config.toml', 'secrets.toml']);
    await assert.rejects(materializeConfiguration(deps, ws, 999, 'prod'), /not found/);
  });

  it('SCAN: a planted secret is absent from the EVENTS stream, every table, every API response and the logs; stored only encrypted', async () => {
    const secret = `sk_live_${randomBytes(16).toString('hex')}`;
    const secretsToml = `[sources.stripe]\napi_key = "${secret}"\n`;
    const forms = [
      secret,
      Buffer.from(secret).toString('base64'),
      Buffer.from(secret).toString('hex'),
      Buffer.from(secretsToml).toString('base64'),
    ];
    const leaks = (text: string) => forms.filter((f) => text.includes(f));
    const responses: string[] = [];
    // (c) every message on the bus while the secret is uploaded, stored and read back: core NATS
    // request/reply (gateway → configurations service), JetStream publishes, object store chunks.
    const bus: string[] = [];
    const tapBus = stack.env.nats.subscribe('>', {
      callback: (_err, m) => {
        const h = m.headers ? [...m.headers.keys()].map((k) => `${k}: ${m.headers!.get(k)}`).join('\n') : '';
        bus.push(`${m.subject}\n${h}\n${Buffer.from(m.data).toString('latin1')}`);
      },
    });
    await stack.env.nats.flush();
    const created = await upload({
      'config.toml': 'a = 1\n',
      'prod.secrets.toml': secretsToml,
      'access.secrets.toml': 'x = "y"\n',
    });
    assert.equal(created.status, 201, created.text);
    responses.push(created.text);
    const c = created.json as ConfigurationBody;
    assert.deepEqual(c.profile_keys.prod, ['sources.stripe.api_key']);
    const synced = await upload(
      { 'config.toml': 'a = 1\n', 'prod.secrets.toml': secretsToml, 'access.secrets.toml': 'x = "y"\n' },
      { path: '/sync' },
    );
    responses.push(synced.text);
    const broken = await upload({ 'prod.secrets.toml': `${secretsToml}oops = \n` });
    assert.equal(broken.status, 400);
    responses.push(broken.text);
    for (const path of ['', '?limit=1&offset=0', '/latest', `/${c.id}`, `/${c.version}`]) {
      const r = await get(path);
      assert.equal(r.status, 200, r.text);
      responses.push(r.text);
    }
    responses.push((await stack.call('GET', '/api/openapi.json', undefined, null)).text);
    for (const [i, text] of responses.entries()) assert.deepEqual(leaks(text), [], `API response ${i}`);
    await stack.env.nats.flush();
    tapBus.unsubscribe();
    assert.ok(
      bus.some(
        (m) => m.startsWith('runway.rpc.configurations.create') || m.includes('.rpc.configurations.create'),
      ),
      'the upload request was seen on the bus',
    );
    for (const [i, text] of bus.entries()) assert.deepEqual(leaks(text), [], `bus message ${i}`);

    // (a) every message of the EVENTS stream, raw bytes and headers.
    const jsm = await jetstreamManager(stack.env.nats);
    const info = await jsm.streams.info(stack.env.stream);
    assert.ok(info.state.last_seq > 0);
    let scanned = 0;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stack.env.stream, { seq });
      if (!m) continue;
      scanned++;
      const raw = Buffer.from(m.data).toString('latin1');
      const headers = m.header ? [...m.header.keys()].map((k) => `${k}: ${m.header.get(k)}`).join('\n') : '';
      assert.deepEqual(leaks(raw + headers), [], `EVENTS message ${seq}`);
    }
    assert.ok(scanned > 5);
    const configCreated = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stack.env.stream, { seq });
      if (m && Buffer.from(m.data).toString().includes(c.id)) configCreated.push(seq);
    }
    assert.ok(
      configCreated.length >= 1,
      'the configuration is in the stream (the scan looked at the right place)',
    );

    // (b) every column of every table of the database (rows cast to text: bytea shows as hex).
    const db = stack.env.newDb<unknown>();
    const tables = await sql<{ table_schema: string; table_name: string }>`
      SELECT table_schema, table_name FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`.execute(
      db,
    );
    assert.ok(!tables.rows.some((t) => t.table_name === 'configuration_blobs'));
    assert.ok(tables.rows.some((t) => t.table_name === 'configurations'));
    let rows = 0;
    for (const t of tables.rows) {
      const r = await sql<{
        row: string;
      }>`SELECT t::text AS row FROM ${sql.table(`${t.table_schema}.${t.table_name}`)} t`.execute(db);
      for (const { row } of r.rows) {
        rows++;
        assert.deepEqual(leaks(row), [], `table ${t.table_schema}.${t.table_name}`);
      }
      // bytea decoded as text too (the hex form is covered above, this covers the raw bytes).
      const cols = await sql<{ column_name: string }>`
        SELECT column_name FROM information_schema.columns
        WHERE table_schema = ${t.table_schema} AND table_name = ${t.table_name} AND data_type = 'bytea'`.execute(
        db,
      );
      for (const col of cols.rows) {
        const b = await sql<{
          v: Buffer | null;
        }>`SELECT ${sql.ref(col.column_name)} AS v FROM ${sql.table(`${t.table_schema}.${t.table_name}`)}`.execute(
          db,
        );
        for (const { v } of b.rows)
          if (v) assert.deepEqual(leaks(v.toString('latin1')), [], `${t.table_name}.${col.column_name}`);
      }
    }
    assert.ok(rows > 10);

    // (d) stored only encrypted, and it decrypts back through materializeConfiguration.
    const blobStore = await ConfigurationContentStore.open(stack.env.nats, stack.env.subjectPrefix);
    const blobs = [
      ...(
        await blobStore.get(
          ws,
          c.id,
          (
            await stack.env
              .newStore(integrationRegistry())
              .read({ workspaceId: ws, type: 'configuration', id: ws })
          ).commits.flatMap((cm) =>
            cm.events.flatMap((e) => {
              const d = configurationCreated.safeParse(e.data);
              return d.success && d.data.configurationId === c.id ? d.data.files.map((f) => f.blobId) : [];
            }),
          ),
        )
      ).values(),
    ];
    assert.equal(blobs.length, 3);
    const stored = blobs.find((b) => b.path === 'prod.secrets.toml')!;
    assert.notEqual(stored.keyId, null);
    assert.ok(isSealed(stored.content));
    assert.equal(stored.content.includes(Buffer.from(secret)), false);
    assert.equal(blobs.find((b) => b.path === 'config.toml')!.keyId, null);
    const deps = {
      store: stack.env.newStore(integrationRegistry()),
      blobs: blobStore,
      masterKey: loadMasterKey({ dataDir: stack.dataDir }),
    };
    const m = await materializeConfiguration(deps, ws, c.version, 'prod');
    assert.equal(m.files.find((f) => f.path === 'prod.secrets.toml')!.content.toString(), secretsToml);
    assert.ok(m.secretValues.includes(secret));

    // and the logs of the whole run (verbose) never showed it.
    assert.deepEqual(leaks(captured.join('')), [], 'process output');
  });
});
