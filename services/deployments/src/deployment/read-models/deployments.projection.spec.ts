import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { projectionMigrations } from '#libs/projections';
import type { DeploymentEvent, DeploymentFile } from '#libs/contracts';
import { createTestEnvironment, projectionSpec, type TestEnvironment } from '#libs/testing';
import { deploymentsMigrations, type DeploymentsTables } from '../../migrations/index.js';
import { deploymentsProjection, FILE_NAMES_MAX, fileNames } from './deployments.projection.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const d1 = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const d2 = '1e6d3b8f-3c5a-4d4b-9f2e-6a7b8c9d0e12';
const actor = '2f7e4c9a-4d6b-4e5c-8a3f-7b8c9d0e1f23';
const h = (c: string) => c.repeat(64);
const file = (path: string, sha = 'a', size = 1): DeploymentFile => ({
  path,
  type: 'file',
  size,
  sha256: h(sha),
  mode: 0o644,
});
const staged = (
  deploymentId: string,
  part: number,
  parts: number,
  files: DeploymentFile[],
): DeploymentEvent => ({
  type: 'DeploymentFilesStaged',
  data: { deploymentId, part, parts, files },
});
const created = (
  deploymentId: string,
  version: number,
  fileCount: number,
  fileParts: number,
): DeploymentEvent => ({
  type: 'DeploymentCreated',
  data: {
    deploymentId,
    version,
    contentHash: `${'A'.repeat(43)}=`,
    filesDigest: h('f'),
    fileCount,
    size: fileCount,
    archiveSize: 0,
    fileParts,
    source: 'sync',
  },
});

describe('deployments projection (real Postgres)', () => {
  let env: TestEnvironment;
  let db: Kysely<DeploymentsTables>;
  let spec: ReturnType<typeof projectionSpec>;
  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, deploymentsMigrations]);
    db = env.newDb<DeploymentsTables>();
    spec = projectionSpec(db, deploymentsProjection); // one sequence of commits for the whole file
  });
  after(() => env.close());

  it('folds staged parts and the version into deployments and deployment_files', async () => {
    const filesRef = { workspaceId: ws, type: 'deployment-files', id: d1 };
    const depRef = { workspaceId: ws, type: 'deployment', id: ws };
    await spec.given(
      { aggregate: filesRef, events: [staged(d1, 0, 2, [file('b.py'), file('a.py', 'b', 2)])] },
      {
        aggregate: filesRef,
        events: [
          staged(d1, 1, 2, [
            { path: 'link', type: 'symlink', size: 0, sha256: h('c'), mode: 0o777, target: 'a.py' },
          ]),
        ],
      },
      { aggregate: depRef, events: [created(d1, 1, 3, 2)], actor, time: '2026-01-02T03:04:05.000Z' },
    );
    const row = await db.selectFrom('deployments').selectAll().where('id', '=', d1).executeTakeFirstOrThrow();
    assert.deepEqual(
      [
        row.workspace_id,
        row.version,
        row.file_count,
        row.created_by,
        row.created_at.toISOString(),
        row.file_names,
        row.source,
      ],
      [ws, 1, 3, actor, '2026-01-02T03:04:05.000Z', 'a.py, b.py, link', 'sync'],
    );
    const files = await db
      .selectFrom('deployment_files')
      .selectAll()
      .where('deployment_id', '=', d1)
      .orderBy('path')
      .execute();
    assert.deepEqual(
      files.map((f) => [f.path, f.type, f.size, f.sha256[0], f.link_target]),
      [
        ['a.py', 'file', 2, 'b', null],
        ['b.py', 'file', 1, 'a', null],
        ['link', 'symlink', 0, 'c', 'a.py'],
      ],
    );
  });

  it('handles many files', async () => {
    const many = Array.from({ length: 2500 }, (_, i) => file(`f/${String(i).padStart(5, '0')}.py`, 'd'));
    await spec.given({
      aggregate: { workspaceId: ws, type: 'deployment-files', id: d2 },
      events: [staged(d2, 0, 1, many)],
    });
    await spec.given({
      aggregate: { workspaceId: ws, type: 'deployment', id: ws },
      events: [created(d2, 2, 2500, 1)],
    });
    const n = await db
      .selectFrom('deployment_files')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('deployment_id', '=', d2)
      .executeTakeFirstOrThrow();
    assert.equal(Number(n.n), 2500);
    const row = await db
      .selectFrom('deployments')
      .select('file_names')
      .where('id', '=', d2)
      .executeTakeFirstOrThrow();
    assert.ok(row.file_names.length <= FILE_NAMES_MAX + 40);
    assert.match(row.file_names, /^f\/00000\.py, f\/00001\.py, .* … \(\d+ more\)$/);
  });

  it('summarises file names within a bound', () => {
    assert.equal(fileNames(['b', 'a']), 'a, b');
    assert.equal(fileNames([]), '');
    assert.ok(fileNames(Array.from({ length: 10_000 }, (_, i) => `file-${i}`)).endsWith('more)'));
  });
});
