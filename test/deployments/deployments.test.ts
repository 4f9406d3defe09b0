import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ClientProxyFactory, Transport, type ClientProxy } from '@nestjs/microservices';
import {
  buildPackage,
  readPackage,
  stringifyManifest,
  writeTar,
  type BuildFile,
  type TarWriteEntry,
} from '#libs/archive';
import { blobBucketName, BlobStore } from '#libs/blobs';
import { blobGcReply, DeploymentRpc } from '#libs/contracts';
import { rpc } from '#libs/service-host';
import { natsClientOptions } from '#libs/nats';
import { startTestStack, type TestStack } from '../support/stack.js';
import { newUser } from '../jobs/support.js';

interface Deployment {
  id: string;
  workspace_id: string;
  version: number;
  content_hash: string;
  file_count: number;
  file_names: string;
  size: number;
  archive_size: number;
  source: string;
  created_by: string;
  date_added: string;
  date_updated: string;
  created?: boolean;
}
interface ErrorBody {
  status_code: number;
  detail: string;
  extra?: Record<string, unknown>;
}
interface FilesBody {
  id: string;
  version: number;
  items: { path: string; type: string; size: number; sha256: string; mode: number; target?: string }[];
  total: number;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

/** Files of a small workspace; `variant` changes one file. */
function workspace(variant = 0): BuildFile[] {
  return [
    { path: 'pipelines/load.py', content: `import dlt\nprint(${variant})\n`, mode: 0o755 },
    { path: 'pipelines/__init__.py', content: '' },
    { path: 'README.md', content: '# project\n' },
    { path: 'data/seed.csv', content: 'a,b\n1,2\n'.repeat(100) },
    { path: 'pipelines/alias.py', target: 'load.py' },
  ];
}

const syncFiles = (files: BuildFile[]) =>
  files.map((f) =>
    'target' in f
      ? { path: f.path, target: f.target }
      : {
          path: f.path,
          size: Buffer.byteLength(f.content as string),
          sha256: sha256(Buffer.from(f.content as string)),
          ...(f.mode ? { mode: f.mode } : {}),
        },
  );

function tgz(
  entries: TarWriteEntry[],
  manifest?: { relative_path: string; size_in_bytes: number }[] | null,
): Buffer {
  const m =
    manifest === undefined
      ? entries
          .filter((e) => e.name.startsWith('files/') && e.type === 'file')
          .map((e) => ({ relative_path: e.name.slice(6), size_in_bytes: e.data?.length ?? 0 }))
      : manifest;
  const all =
    m === null
      ? entries
      : [
          ...entries,
          {
            name: 'manifest.yaml',
            type: 'file' as const,
            data: Buffer.from(stringifyManifest({ engine_version: 1, files: m })),
          },
        ];
  return gzipSync(writeTar(all));
}
const entry = (name: string, text: string | Buffer): TarWriteEntry => ({
  name,
  type: 'file',
  data: Buffer.isBuffer(text) ? text : Buffer.from(text),
});

describe('deployments (whole stack)', () => {
  let stack: TestStack;
  let ws: string;
  let blobs: BlobStore;
  let client: ClientProxy;
  let adminId: string;

  const upload = async (
    body: Buffer | string,
    opts: { token?: string | null; field?: string; contentType?: string; workspace?: string } = {},
  ) => {
    const path = `/api/v1/workspaces/${opts.workspace ?? ws}/deployments`;
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? stack.adminToken : opts.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: RequestInit['body'];
    if (opts.contentType) {
      headers['content-type'] = opts.contentType;
      payload = typeof body === 'string' ? body : new Uint8Array(body);
    } else {
      const form = new FormData();
      form.append(
        opts.field ?? 'file',
        new Blob([new Uint8Array(Buffer.from(body))], { type: 'application/x-tar' }),
        'workspace.tar.gz',
      );
      payload = form;
    }
    const res = await fetch(`${stack.url}${path}`, { method: 'POST', headers, body: payload });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, json, text };
  };
  const putBlob = async (
    data: Buffer,
    hash = sha256(data),
    opts: { token?: string | null; contentType?: string; workspace?: string } = {},
  ) => {
    const headers: Record<string, string> = {
      'content-type': opts.contentType ?? 'application/octet-stream',
    };
    const token = opts.token === undefined ? stack.adminToken : opts.token;
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${stack.url}/api/v1/workspaces/${opts.workspace ?? ws}/blobs/${hash}`, {
      method: 'PUT',
      headers,
      body: new Uint8Array(data),
    });
    const text = await res.text();
    return { status: res.status, json: JSON.parse(text) as unknown, text };
  };
  const get = (path: string, token?: string, workspace = ws) =>
    stack.call('GET', `/api/v1/workspaces/${workspace}/deployments${path}`, undefined, token);
  const total = async (workspace = ws) =>
    ((await get('?limit=1&offset=0', undefined, workspace)).json as { total: number }).total;
  const blobCount = async (workspace = ws) => (await blobs.list(workspace)).length;
  const mkUser = async (email: string, role?: 'viewer' | 'member') =>
    (await newUser(stack, email, role)).token;

  /** A new workspace of the admin, once its membership is readable. */
  const newWorkspace = async (name: string) => {
    const r = await stack.call('POST', '/api/v1/workspaces', { name }, undefined, {
      'idempotency-key': `ws-${randomBytes(4).toString('hex')}`,
    });
    assert.equal(r.status, 201, r.text);
    const id = (r.json as { id: string }).id;
    for (let i = 0; i < 200 && (await stack.call('GET', `/api/v1/workspaces/${id}`)).status !== 200; i++)
      await new Promise((res) => setTimeout(res, 25));
    return id;
  };

  before(async () => {
    stack = await startTestStack({
      RUNWAY_DEPLOY_MAX_UPLOAD_BYTES: String(1 * MiB),
      RUNWAY_DEPLOY_MAX_FILES: '50',
      RUNWAY_DEPLOY_MAX_BYTES: String(2 * MiB),
      RUNWAY_BLOB_GC_INTERVAL_SECONDS: '0',
    });
    ws = stack.workspaceId;
    blobs = await BlobStore.open(stack.env.nats, { bucket: blobBucketName(stack.env.subjectPrefix) });
    client = ClientProxyFactory.create({
      transport: Transport.NATS,
      options: natsClientOptions(stack.env.natsUrl),
    });
    adminId = ((await stack.call('GET', '/api/v1/me')).json as { user_id: string }).user_id;
  });
  after(async () => {
    await client?.close();
    await stack?.stop();
  });

  it('answers 404 for latest before the first deployment', async () => {
    const r = await get('/latest');
    assert.equal(r.status, 404, r.text);
    assert.equal((r.json as ErrorBody).status_code, 404);
    assert.match((r.json as ErrorBody).detail, /no deployment yet/);
    assert.deepEqual((await get('')).json, { items: [], limit: 100, offset: 0, total: 0 });
  });

  it('creates version 1 from the dlt tarball, with the content hash the dlt CLI computes', async () => {
    const archive = buildPackage(workspace());
    const r = await upload(archive);
    assert.equal(r.status, 201, r.text);
    const d = r.json as Deployment;
    assert.equal(d.version, 1);
    assert.equal(d.workspace_id, ws);
    assert.equal(d.content_hash, (await readPackage(archive)).contentHash);
    assert.equal(d.file_count, 5);
    assert.equal(
      d.file_names,
      'README.md, data/seed.csv, pipelines/__init__.py, pipelines/alias.py, pipelines/load.py',
    );
    assert.equal(d.size, 10 + 800 + 0 + 20);
    assert.equal(d.archive_size, archive.length);
    assert.equal(d.created_by, adminId);
    assert.ok(!Number.isNaN(Date.parse(d.date_added)) && d.date_added === d.date_updated);
    const latest = await get('/latest');
    assert.equal(latest.status, 200);
    assert.deepEqual(latest.json, d);
  });

  it('numbers versions, lists newest first with limit/offset, and finds them by id or version', async () => {
    for (const v of [1, 2]) assert.equal((await upload(buildPackage(workspace(v)))).status, 201);
    const list = (await get('')).json as {
      items: Deployment[];
      total: number;
      limit: number;
      offset: number;
    };
    assert.deepEqual(
      list.items.map((d) => d.version),
      [3, 2, 1],
    );
    assert.equal(list.total, 3);
    const page = (await get('?limit=1&offset=1')).json as {
      items: Deployment[];
      total: number;
      limit: number;
      offset: number;
    };
    assert.deepEqual([page.items.map((d) => d.version), page.limit, page.offset, page.total], [[2], 1, 1, 3]);
    const v2 = list.items[1]!;
    assert.deepEqual((await get('/2')).json, v2);
    assert.deepEqual((await get(`/${v2.id}`)).json, v2);
    assert.equal(((await get('/latest')).json as Deployment).version, 3);
    assert.equal((await get('/99')).status, 404);
    assert.equal((await get('/00000000-0000-4000-8000-000000000000')).status, 404);
    assert.equal((await get('/nonsense')).status, 400);
    assert.equal((await get('?limit=-1')).status, 400);
  });

  it('lists the files of a version with sizes, hashes and symlink targets', async () => {
    const r = await get('/1/files');
    assert.equal(r.status, 200, r.text);
    const body = r.json as FilesBody;
    assert.equal(body.version, 1);
    assert.deepEqual(
      body.items.map((f) => [f.path, f.type, f.size, f.mode]),
      [
        ['README.md', 'file', 10, 0o644],
        ['data/seed.csv', 'file', 800, 0o644],
        ['pipelines/__init__.py', 'file', 0, 0o644],
        ['pipelines/alias.py', 'symlink', 0, 0o777],
        ['pipelines/load.py', 'file', 20, 0o755],
      ],
    );
    assert.equal(body.items[0]!.sha256, sha256('# project\n'));
    assert.equal(body.items[3]!.target, 'load.py');
    assert.equal(((await get('/latest/files')).json as FilesBody).version, 3);
    const blob = await fetch(`${stack.url}/api/v1/workspaces/${ws}/blobs/${sha256('# project\n')}`, {
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    assert.equal(blob.status, 200);
    assert.equal(await blob.text(), '# project\n');
  });

  it('stores each content once, however many versions hold it', async () => {
    // Versions 1-3 share four files; load.py differs each time: 4 + 3 contents, plus the file lists.
    const contents = (await blobs.list(ws)).map((b) => b.sha256);
    for (const v of [0, 1, 2]) assert.ok(contents.includes(sha256(`import dlt\nprint(${v})\n`)));
    assert.equal(contents.filter((c) => c === sha256('# project\n')).length, 1);
  });

  it('syncs incrementally: an unchanged workspace uploads nothing and creates no version', async () => {
    const files = syncFiles(workspace(2)); // = version 3
    const blobsBefore = await blobCount();
    const plan = await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/plan`, { files });
    assert.equal(plan.status, 201, plan.text);
    assert.deepEqual(plan.json, { missing: [], missing_bytes: 0, file_count: 5, unchanged: true });
    const commit = await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/commit`, { files });
    assert.equal(commit.status, 201, commit.text);
    const d = commit.json as Deployment;
    assert.equal(d.created, false);
    assert.equal(d.version, 3);
    assert.equal(await total(), 3);
    assert.equal(await blobCount(), blobsBefore, 'only the file list, which exists already');
  });

  it('syncs a change: uploads only the changed file, and agrees with the dlt hash of the same files', async () => {
    const next = workspace(7);
    const files = syncFiles(next);
    const plan = (await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/plan`, { files }))
      .json as { missing: string[]; missing_bytes: number; unchanged: boolean };
    const changed = Buffer.from('import dlt\nprint(7)\n');
    assert.deepEqual(plan, {
      missing: [sha256(changed)],
      missing_bytes: changed.length,
      file_count: 5,
      unchanged: false,
    });
    // Committing before uploading fails cleanly.
    const early = await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/commit`, { files });
    assert.equal(early.status, 400, early.text);
    assert.match((early.json as ErrorBody).detail, /1 file content blob\(s\) are missing/);
    assert.equal(await total(), 3);
    const put = await putBlob(changed);
    assert.equal(put.status, 201, put.text);
    assert.deepEqual(put.json, { sha256: sha256(changed), size: changed.length, created: true });
    const commit = await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/commit`, { files });
    assert.equal(commit.status, 201, commit.text);
    const d = commit.json as Deployment;
    assert.deepEqual([d.created, d.version, d.source, d.archive_size], [true, 4, 'sync', 0]);
    assert.equal(
      d.content_hash,
      (await readPackage(buildPackage(next))).contentHash,
      'same hash as the dlt CLI for the same files',
    );
    // The dlt CLI path sees it as unchanged: its local hash equals latest.content_hash.
    assert.equal(
      ((await get('/latest')).json as Deployment).content_hash,
      (await readPackage(buildPackage(next))).contentHash,
    );
  });

  it('refuses a blob whose content does not match its hash, or sent the wrong way', async () => {
    const before = await blobCount();
    const data = Buffer.from('hello');
    const wrong = await putBlob(data, sha256('other'));
    assert.equal(wrong.status, 400, wrong.text);
    assert.match((wrong.json as ErrorBody).detail, /does not match its hash/);
    const text = await putBlob(data, sha256(data), { contentType: 'text/plain' });
    assert.equal(text.status, 400);
    assert.match((text.json as ErrorBody).detail, /application\/octet-stream/);
    assert.equal((await putBlob(data, sha256(data), { contentType: 'application/json' })).status, 400);
    const badHash = await putBlob(data, 'abc');
    assert.equal(badHash.status, 400);
    const big = await putBlob(randomBytes(MiB + 1));
    assert.equal(big.status, 413, big.text);
    assert.match((big.json as ErrorBody).detail, /too large/);
    assert.equal(await blobCount(), before);
  });

  it('accepts many blobs in one tar, checking every member before storing any', async () => {
    const post = async (tar: Buffer, contentType = 'application/x-tar') => {
      const res = await fetch(`${stack.url}/api/v1/workspaces/${ws}/blobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': contentType },
        body: new Uint8Array(tar),
      });
      return { status: res.status, json: (await res.json()) as unknown };
    };
    const a = Buffer.from(`batch a ${randomBytes(4).toString('hex')}`);
    const b = Buffer.from(`batch b ${randomBytes(4).toString('hex')}`);
    const before = await blobCount();
    const bad = await post(
      writeTar([
        entry(sha256(a), a),
        entry(
          sha256(a).replace(/^./, (c) => (c === '0' ? '1' : '0')),
          b,
        ),
      ]),
    );
    assert.equal(bad.status, 400);
    assert.match((bad.json as ErrorBody).detail, /does not match its hash/);
    assert.equal((await post(writeTar([entry('name.txt', a)]))).status, 400);
    assert.equal((await post(writeTar([entry(sha256(a), a)]), 'application/octet-stream')).status, 400);
    assert.equal(await blobCount(), before, 'nothing stored');
    const ok = await post(writeTar([entry(sha256(a), a), entry(sha256(b), b)]));
    assert.equal(ok.status, 201);
    assert.deepEqual(ok.json, { stored: 2, created: 2, bytes: a.length + b.length });
    assert.equal(await blobCount(), before + 2);
  });

  describe('refuses bad uploads with 400, storing no version and no blob', () => {
    const cases: [string, () => Buffer, RegExp, number?][] = [
      ['an absolute path', () => tgz([entry('/etc/passwd', 'x')], null), /absolute path/],
      ['a ".." path', () => tgz([entry('files/../../etc/cron.d/x', 'x')]), /contains "\.\."/],
      [
        'a symlink leaving the tree',
        () =>
          tgz([
            entry('files/a.py', 'x'),
            { name: 'files/link', type: 'symlink', linkname: '../../../etc/passwd' },
          ]),
        /points outside the package/,
      ],
      [
        'an absolute symlink',
        () => tgz([{ name: 'files/link', type: 'symlink', linkname: '/etc/passwd' }]),
        /absolute path/,
      ],
      [
        'a hard link leaving the tree',
        () => tgz([{ name: 'files/h', type: 'hardlink', linkname: '/etc/shadow' }]),
        /hard link .* points outside the package/,
      ],
      [
        'a device file',
        () => tgz([entry('files/a.py', 'x'), { name: 'files/dev', type: 'chardev' }]),
        /character device/,
      ],
      ['a FIFO', () => tgz([{ name: 'files/fifo', type: 'fifo' }]), /FIFO/],
      [
        'more files than the limit',
        () => tgz(Array.from({ length: 51 }, (_, i) => entry(`files/f${i}.py`, `${i}`))),
        /more than 50 files/,
      ],
      [
        'more bytes than the limit',
        () =>
          tgz([
            entry('files/a', 'a'.repeat(900_000)),
            entry('files/b', 'b'.repeat(900_000)),
            entry('files/c', 'c'.repeat(900_000)),
          ]),
        /add up to more than the limit of 2097152 bytes/,
      ],
      [
        'a file above the per-file limit',
        () => tgz([entry('files/a', 'a'.repeat(MiB + 10))]),
        /more than the limit of 1048576 bytes per file/,
      ],
      ['a gzip bomb', () => gzipSync(Buffer.alloc(16 * MiB), { level: 9 }), /gzip bomb/],
      ['data that is not gzip', () => Buffer.from('plain text, not an archive'), /not gzip-compressed/],
      ['a tar that is not gzipped', () => writeTar([entry('files/a', 'x')]), /not gzip-compressed/],
      ['a missing manifest', () => tgz([entry('files/a.py', 'x')], null), /no manifest\.yaml/],
      [
        'a manifest that disagrees with the contents',
        () =>
          tgz(
            [entry('files/a.py', 'x')],
            [
              { relative_path: 'a.py', size_in_bytes: 1 },
              { relative_path: 'b.py', size_in_bytes: 3 },
            ],
          ),
        /lists "b\.py", but the package has no files\/b\.py/,
      ],
      [
        'a file the manifest does not list',
        () =>
          tgz(
            [entry('files/a.py', 'x'), entry('files/extra.py', 'y')],
            [{ relative_path: 'a.py', size_in_bytes: 1 }],
          ),
        /files\/extra\.py is in the package but not listed/,
      ],
      [
        'a wrong size in the manifest',
        () => tgz([entry('files/a.py', 'xyz')], [{ relative_path: 'a.py', size_in_bytes: 1 }]),
        /says "a\.py" has 1 bytes/,
      ],
      ['a corrupt archive', () => buildPackage(workspace()).subarray(0, 60), /corrupt or truncated/],
    ];
    for (const [name, make, detail] of cases) {
      it(name, async () => {
        const [versions, stored] = [await total(), await blobCount()];
        const r = await upload(make());
        assert.equal(r.status, 400, r.text);
        const body = r.json as ErrorBody;
        assert.equal(body.status_code, 400);
        assert.match(body.detail, /^invalid deployment package: /);
        assert.match(body.detail, detail);
        assert.equal(typeof body.extra?.code, 'string');
        assert.equal(await total(), versions, 'no new version');
        assert.equal(await blobCount(), stored, 'no new blob');
      });
    }

    it('an oversize request body (413)', async () => {
      const [versions, stored] = [await total(), await blobCount()];
      const r = await upload(randomBytes(MiB + 100 * 1024));
      assert.equal(r.status, 413, r.text);
      assert.equal((r.json as ErrorBody).status_code, 413);
      assert.match((r.json as ErrorBody).detail, /deployment package too large/);
      assert.equal(await total(), versions);
      assert.equal(await blobCount(), stored);
    });

    it('a wrong content type, or a missing "file" part', async () => {
      const json = await stack.call('POST', `/api/v1/workspaces/${ws}/deployments`, { file: 'x' });
      assert.equal(json.status, 400, json.text);
      assert.match((json.json as ErrorBody).detail, /expected a multipart\/form-data body/);
      const octets = await upload(buildPackage(workspace()), { contentType: 'application/octet-stream' });
      assert.equal(octets.status, 400);
      const field = await upload(buildPackage(workspace()), { field: 'archive' });
      assert.equal(field.status, 400);
      assert.match((field.json as ErrorBody).detail, /part named "file"/);
    });

    it('bad sync file lists', async () => {
      const versions = await total();
      const bad: [unknown, RegExp][] = [
        [{ files: [{ path: '../x', size: 1, sha256: sha256('x') }] }, /contains "\.\."/],
        [{ files: [{ path: '/x', size: 1, sha256: sha256('x') }] }, /absolute/],
        [{ files: [{ path: 'l', target: '../../etc' }] }, /points outside the package/],
        [{ files: [{ path: 'a', size: 1, sha256: 'nothex' }] }, /sha256/],
        [
          {
            files: [
              { path: 'a', size: 1, sha256: sha256('x') },
              { path: 'a', size: 1, sha256: sha256('x') },
            ],
          },
          /more than once/,
        ],
        [
          { files: Array.from({ length: 51 }, (_, i) => ({ path: `f${i}`, size: 1, sha256: sha256('x') })) },
          /more than the limit of 50/,
        ],
        [{ nope: true }, /invalid body/],
      ];
      for (const [body, detail] of bad) {
        for (const step of ['plan', 'commit']) {
          const r = await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/${step}`, body);
          assert.equal(r.status, 400, `${step} ${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
          assert.match((r.json as ErrorBody).detail, detail);
        }
      }
      assert.equal(await total(), versions);
    });
  });

  it('lets viewers read but not deploy, and hides the workspace from others (404)', async () => {
    const viewer = await mkUser('dviewer@example.com', 'viewer');
    const outsider = await mkUser('doutsider@example.com');
    const archive = buildPackage(workspace());
    assert.equal((await get('/latest', viewer)).status, 200);
    assert.equal((await get('/1/files', viewer)).status, 200);
    for (const [token, status] of [
      [viewer, 403],
      [outsider, 404],
    ] as const) {
      assert.equal((await upload(archive, { token })).status, status);
      assert.equal(
        (await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/plan`, { files: [] }, token))
          .status,
        status,
      );
      assert.equal(
        (await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/commit`, { files: [] }, token))
          .status,
        status,
      );
      assert.equal((await putBlob(Buffer.from('x'), undefined, { token })).status, status);
    }
    for (const path of ['', '/latest', '/1', '/1/files'])
      assert.equal((await get(path, outsider)).status, 404);
    assert.equal((await get('', undefined)).status, 200);
    assert.equal(
      (await stack.call('GET', `/api/v1/workspaces/${ws}/deployments`, undefined, null)).status,
      401,
    );
  });

  it("never shows another workspace's deployment or blobs (404)", async () => {
    const ws2 = await newWorkspace('other');
    const secret = [{ path: 'secret.py', content: `print(${randomBytes(8).toString('hex')})\n` }];
    const r = await upload(buildPackage(secret), { workspace: ws2 });
    assert.equal(r.status, 201, r.text);
    const d2 = r.json as Deployment;
    assert.equal(d2.version, 1, 'versions are numbered per workspace');
    assert.equal((await get(`/${d2.id}`)).status, 404, 'by id through the wrong workspace');
    assert.equal((await get(`/${d2.id}/files`)).status, 404);
    const hash = sha256(secret[0]!.content);
    const probe = await fetch(`${stack.url}/api/v1/workspaces/${ws}/blobs/${hash}`, {
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    assert.equal(probe.status, 404, "a workspace cannot read another's content by hash");
    const plan = (
      await stack.call('POST', `/api/v1/workspaces/${ws}/deployments/sync/plan`, {
        files: [{ path: 'secret.py', size: Buffer.byteLength(secret[0]!.content), sha256: hash }],
      })
    ).json as { missing: string[] };
    assert.deepEqual(plan.missing, [hash], 'nor learn that it exists');
  });

  it('answers a retried upload (same Idempotency-Key) with the original version', async () => {
    const ws4 = await newWorkspace('retry');
    const archive = buildPackage([{ path: 'a.py', content: 'print(1)\n' }]);
    const send = async () => {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(archive)]), 'workspace.tar.gz');
      const res = await fetch(`${stack.url}/api/v1/workspaces/${ws4}/deployments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.adminToken}`, 'idempotency-key': 'deploy-once' },
        body: form,
      });
      return { status: res.status, json: (await res.json()) as Deployment };
    };
    const first = await send();
    const again = await send();
    assert.deepEqual([first.status, again.status], [201, 201]);
    assert.deepEqual(again.json, first.json);
    assert.equal(await total(ws4), 1);
  });

  it('numbers concurrent deployments without gaps', async () => {
    const ws3 = await newWorkspace('busy');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        upload(buildPackage([{ path: 'main.py', content: `print(${i})\n` }]), { workspace: ws3 }),
      ),
    );
    for (const r of results) assert.equal(r.status, 201, r.text);
    assert.deepEqual(
      results.map((r) => (r.json as Deployment).version).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.equal(await total(ws3), 8);
  });

  it('sweeps blobs that no version references (an abandoned sync), and keeps the rest', async () => {
    const orphan = Buffer.from(`never committed ${randomBytes(4).toString('hex')}`);
    assert.equal((await putBlob(orphan)).status, 201);
    const referenced = new Set<string>();
    for (const v of [1, 2, 3, 4]) {
      for (const f of ((await get(`/${v}/files`)).json as FilesBody).items)
        if (f.type === 'file') referenced.add(f.sha256);
    }
    const before = await blobs.list(ws);
    const garbage = before.filter((b) => !referenced.has(b.sha256));
    assert.ok(garbage.some((b) => b.sha256 === sha256(orphan)));
    for (const b of garbage) {
      if (b.sha256 === sha256(orphan)) continue;
      const content = (await blobs.get(ws, b.sha256))!.toString('utf8');
      assert.ok(
        content.startsWith('[{"path":') || content.startsWith('batch '),
        `only file lists (handed to the service) and uncommitted uploads: ${content.slice(0, 40)}`,
      );
    }
    // Young blobs survive a sweep with the default grace period.
    const kept = await rpc(client, DeploymentRpc.gc, { workspaceId: ws }, blobGcReply);
    assert.equal(kept.deleted, 0);
    const swept = await rpc(client, DeploymentRpc.gc, { workspaceId: ws, graceMs: 0 }, blobGcReply);
    assert.equal(swept.deleted, garbage.length, JSON.stringify(swept));
    const afterSweep = new Set((await blobs.list(ws)).map((b) => b.sha256));
    assert.deepEqual(
      [...afterSweep].sort(),
      [...referenced].sort(),
      'exactly the referenced contents remain',
    );
    // Every version can still be read back, file by file.
    for (const sha of referenced) assert.ok(await blobs.get(ws, sha));
  });
});
