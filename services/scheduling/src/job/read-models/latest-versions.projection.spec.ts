import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import type { DomainEvent } from '#libs/eventstore';
import { projectionMigrations } from '#libs/projections';
import { createTestEnvironment, projectionSpec, type TestEnvironment } from '#libs/testing';
import { schedulingMigrations, type SchedulingTables } from '../../migrations/index.js';
import { latestVersionsProjection } from './latest-versions.projection.js';
import {
  deploymentHasPath,
  deploymentPaths,
  latestConfiguration,
  latestDeployment,
} from './latest-versions.queries.js';

const ws = '9e1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a55';
const other = '9e1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a66';
const d1 = '11111111-1111-4111-8111-111111111111';
const d2 = '22222222-2222-4222-8222-222222222222';
const c1 = '33333333-3333-4333-8333-333333333333';
const c2 = '44444444-4444-4444-8444-444444444444';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const sha = 'a'.repeat(64);

const file = (path: string) => ({ path, type: 'file', size: 1, sha256: sha, mode: 0o644 });
const staged = (deploymentId: string, paths: string[], part = 0, parts = 1): DomainEvent => ({
  type: 'DeploymentFilesStaged',
  data: { deploymentId, part, parts, files: paths.map(file) },
});
const deployed = (deploymentId: string, version: number, fileCount: number): DomainEvent => ({
  type: 'DeploymentCreated',
  data: {
    deploymentId,
    version,
    contentHash: `${'A'.repeat(43)}=`,
    filesDigest: sha,
    fileCount,
    size: fileCount,
    archiveSize: 0,
    fileParts: 1,
    source: 'sync',
  },
});
const configured = (configurationId: string, version: number, profiles: string[]): DomainEvent => ({
  type: 'ConfigurationCreated',
  data: {
    configurationId,
    version,
    contentHash: 'h',
    fileCount: 0,
    size: 0,
    profiles,
    warnings: [],
    files: [],
    createdBy: user,
  },
});

describe('latest_versions projection (real Postgres)', () => {
  let env: TestEnvironment;
  let db: Kysely<SchedulingTables>;
  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, schedulingMigrations]);
    db = env.newDb<SchedulingTables>();
  });
  after(() => env.close());

  it("folds the deployment and configuration events into each workspace's latest versions and paths", async () => {
    const p = projectionSpec(db, latestVersionsProjection);
    const files = (id: string) => ({ workspaceId: ws, type: 'deployment-files', id });
    const deployment = { workspaceId: ws, type: 'deployment', id: ws };
    const configuration = { workspaceId: ws, type: 'configuration', id: ws };
    assert.equal(await latestDeployment(db, ws), null, 'nothing deployed yet');
    assert.equal(await latestConfiguration(db, ws), null);
    await p.given(
      { aggregate: files(d1), events: [staged(d1, ['a.py', 'lib/b.py'])] },
      { aggregate: deployment, events: [deployed(d1, 1, 2)] },
      { aggregate: configuration, events: [configured(c1, 1, ['default', 'prod'])] },
    );
    assert.deepEqual(await latestDeployment(db, ws), { id: d1, version: 1 });
    assert.deepEqual(await latestConfiguration(db, ws), {
      id: c1,
      version: 1,
      profiles: ['default', 'prod'],
    });
    assert.equal(await deploymentHasPath(db, ws, d1, './lib/b.py'), true);
    assert.equal(await deploymentHasPath(db, ws, d1, 'c.py'), false);
    assert.equal(await deploymentHasPath(db, other, d1, 'a.py'), false, 'only in its own workspace');
    // Version 2 in two parts, a second configuration; then a replayed older event moves nothing.
    await p.given(
      { aggregate: files(d2), events: [staged(d2, ['c.py'], 0, 2)] },
      { aggregate: files(d2), events: [staged(d2, ['d.py'], 1, 2)] },
      { aggregate: deployment, events: [deployed(d2, 2, 2)] },
      { aggregate: configuration, events: [configured(c2, 2, ['default', 'access'])] },
      { aggregate: deployment, events: [deployed(d1, 1, 2)] },
    );
    assert.deepEqual(await latestDeployment(db, ws), { id: d2, version: 2 });
    assert.deepEqual(await latestConfiguration(db, ws), {
      id: c2,
      version: 2,
      profiles: ['default', 'access'],
    });
    assert.deepEqual([...(await deploymentPaths(db, ws, d2))].sort(), ['c.py', 'd.py']);
    assert.equal((await deploymentPaths(db, ws, d1)).size, 0, "an older version's paths are gone");
    assert.equal(await latestDeployment(db, other), null);
  });
});
