import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConflictError, DomainError, fold } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import { deploymentDecider, deploymentFilesDecider, type DeploymentCommand } from './deployment.decider.js';
import type { DeploymentEvent, DeploymentFilesEvent } from './deployment.events.js';

const d1 = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const d2 = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const hashA = 'A'.repeat(43) + '=';
const hashB = 'B'.repeat(43) + '=';
const digA = 'a'.repeat(64);
const digB = 'b'.repeat(64);

const create = (over: Partial<DeploymentCommand> = {}): DeploymentCommand => ({
  type: 'CreateDeployment',
  deploymentId: d1,
  contentHash: hashA,
  filesDigest: digA,
  fileCount: 2,
  size: 10,
  archiveSize: 100,
  fileParts: 1,
  source: 'archive',
  onlyIfChanged: false,
  ...over,
});
const created = (
  deploymentId: string,
  version: number,
  contentHash = hashA,
  filesDigest = digA,
  source: 'archive' | 'sync' = 'archive',
): DeploymentEvent => ({
  type: 'DeploymentCreated',
  data: {
    deploymentId,
    version,
    contentHash,
    filesDigest,
    fileCount: 2,
    size: 10,
    archiveSize: 100,
    fileParts: 1,
    source,
  },
});

const spec = deciderSpec(deploymentDecider);
const files = deciderSpec(deploymentFilesDecider);

describe('deployment decider', () => {
  it('numbers versions 1, 2, 3 per workspace', () => {
    spec
      .given([])
      .when(create())
      .then([created(d1, 1)]);
    spec
      .given([created(d1, 1)])
      .when(create({ deploymentId: d2, contentHash: hashB, filesDigest: digB }))
      .then([created(d2, 2, hashB, digB)]);
  });
  it('records the requirements.json uploaded beside the files (dlt-runtime 0.26.1)', () => {
    const requirements = { sha256: 'c'.repeat(64), size: 3943 };
    spec
      .given([])
      .when(create({ requirements }))
      .then([
        {
          type: 'DeploymentCreated',
          data: {
            deploymentId: d1,
            version: 1,
            contentHash: hashA,
            filesDigest: digA,
            fileCount: 2,
            size: 10,
            archiveSize: 100,
            fileParts: 1,
            source: 'archive',
            requirements,
          },
        },
      ]);
  });
  it('always creates a version for an uploaded archive, even with the same files', () => {
    spec
      .given([created(d1, 1)])
      .when(create({ deploymentId: d2 }))
      .then([created(d2, 2)]);
  });
  it('creates nothing for a sync whose files equal the latest version', () => {
    spec
      .given([created(d1, 1)])
      .when(create({ deploymentId: d2, onlyIfChanged: true, source: 'sync' }))
      .thenNothing();
    spec
      .given([created(d1, 1)])
      .when(
        create({
          deploymentId: d2,
          onlyIfChanged: true,
          source: 'sync',
          filesDigest: digB,
          contentHash: hashB,
        }),
      )
      .then([created(d2, 2, hashB, digB, 'sync')]);
  });
  it('compares with the latest version only', () => {
    const d3 = '1e6d3b8f-3c5a-4d4b-9f2e-6a7b8c9d0e12';
    spec
      .given([created(d1, 1), created(d2, 2, hashB, digB)])
      .when(create({ deploymentId: d3, onlyIfChanged: true, source: 'sync' }))
      .then([created(d3, 3, hashA, digA, 'sync')]);
  });
  it('is idempotent for the same deployment id, and refuses to reuse an older one', () => {
    spec
      .given([created(d1, 1)])
      .when(create())
      .thenNothing();
    spec
      .given([created(d1, 1), created(d2, 2)])
      .when(create())
      .thenThrows(ConflictError, /already exists/);
  });
  it('keeps every version by its deployment id (a retried command finds the version it created)', () => {
    const state = fold(deploymentDecider, [created(d1, 1), created(d2, 2, hashB, digB)]);
    assert.deepEqual(state.byId.get(d1), {
      deploymentId: d1,
      version: 1,
      contentHash: hashA,
      filesDigest: digA,
    });
    assert.equal(state.byId.get(d2)?.version, 2);
    assert.equal(state.latest?.deploymentId, d2);
  });
  it('refuses files without a staged list, but allows an empty deployment', () => {
    spec
      .given([])
      .when(create({ fileParts: 0 }))
      .thenThrows(DomainError, /staged file list/);
    const empty = created(d1, 1);
    spec
      .given([])
      .when(create({ fileParts: 0, fileCount: 0 }))
      .then([
        {
          type: 'DeploymentCreated',
          data: {
            ...empty.data,
            fileCount: 0,
            fileParts: 0,
          },
        },
      ]);
  });
});

describe('deployment files decider', () => {
  const part = (p: number, parts = 2) => ({
    type: 'StageFilesPart' as const,
    deploymentId: d1,
    part: p,
    parts,
    files: [],
  });
  const staged = (p: number, parts = 2): DeploymentFilesEvent => ({
    type: 'DeploymentFilesStaged',
    data: { deploymentId: d1, part: p, parts, files: [] },
  });
  it('stages parts in order', () => {
    files
      .given([])
      .when(part(0))
      .then([staged(0)]);
    files
      .given([staged(0)])
      .when(part(1))
      .then([staged(1)]);
  });
  it('ignores a part staged before (retry) and refuses gaps or a different part count', () => {
    files
      .given([staged(0)])
      .when(part(0))
      .thenNothing();
    files
      .given([])
      .when(part(1))
      .thenThrows(DomainError, /comes before part 0/);
    files
      .given([staged(0)])
      .when(part(1, 3))
      .thenThrows(ConflictError, /2 parts, not 3/);
  });
});
