import { describe, it } from 'node:test';
import { ConflictError, DomainError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import type { ConfigurationFile } from '#libs/contracts';
import type { ConfigurationEvent } from './configuration.events.js';
import { configurationDecider, type ConfigurationCommand } from './configuration.decider.js';

const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const id1 = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const id2 = '1e6d3b8f-3c5a-4d4b-9f2e-6a7b8c9d0e12';
const blob = 'a5a1f3c2-6d7e-4f80-9a1b-2c3d4e5f6a7b';
const configFile: ConfigurationFile = {
  path: 'config.toml',
  size: 10,
  kind: 'config',
  profile: 'default',
  encrypted: false,
  keys: ['a'],
  blobId: blob,
  keyId: null,
};
const secretsFile: ConfigurationFile = {
  path: 'prod.secrets.toml',
  size: 20,
  kind: 'secrets',
  profile: 'prod',
  encrypted: true,
  keys: ['x.y'],
  blobId: blob,
  keyId: 'k1',
};

const command = (over: Partial<ConfigurationCommand> = {}): ConfigurationCommand => ({
  type: 'CreateConfiguration',
  configurationId: id1,
  version: 1,
  contentHash: 'h1',
  size: 100,
  profiles: ['default', 'prod'],
  warnings: [],
  files: [configFile, secretsFile],
  createdBy: user,
  onlyIfChanged: false,
  ...over,
});
const created = (over: Partial<ConfigurationCommand> = {}): ConfigurationEvent => {
  const c = command(over);
  return {
    type: 'ConfigurationCreated',
    data: {
      configurationId: c.configurationId,
      version: c.version,
      contentHash: c.contentHash,
      fileCount: c.files.length,
      size: c.size,
      profiles: c.profiles,
      warnings: c.warnings,
      files: c.files,
      createdBy: c.createdBy,
    },
  };
};
const spec = deciderSpec(configurationDecider);

describe('configuration decider', () => {
  it('creates version 1 of an empty workspace', () => {
    spec.given([]).when(command()).then([created()]);
  });
  it('numbers versions without gaps and refuses any other version', () => {
    spec
      .given([created()])
      .when(command({ configurationId: id2, version: 2, contentHash: 'h2' }))
      .then([created({ configurationId: id2, version: 2, contentHash: 'h2' })]);
    spec
      .given([created()])
      .when(command({ configurationId: id2, version: 3 }))
      .thenThrows(ConflictError, /not the next one \(2\)/);
    spec
      .given([created()])
      .when(command({ configurationId: id2, version: 1 }))
      .thenThrows(ConflictError);
  });
  it('creates a version for the same content when asked to (the compatible POST)', () => {
    spec
      .given([created()])
      .when(command({ configurationId: id2, version: 2 }))
      .then([created({ configurationId: id2, version: 2 })]);
  });
  it('creates nothing on a sync whose content hash equals the latest', () => {
    spec
      .given([created()])
      .when(command({ configurationId: id2, version: 2, onlyIfChanged: true }))
      .thenNothing();
    spec
      .given([created()])
      .when(command({ configurationId: id2, version: 2, contentHash: 'h2', onlyIfChanged: true }))
      .then([created({ configurationId: id2, version: 2, contentHash: 'h2', onlyIfChanged: true })]);
  });
  it('refuses a secrets file that is not stored encrypted, and duplicate paths', () => {
    spec
      .given([])
      .when(command({ files: [{ ...secretsFile, encrypted: false, keyId: null }] }))
      .thenThrows(DomainError, /encrypted/);
    spec
      .given([])
      .when(command({ files: [configFile, configFile] }))
      .thenThrows(DomainError, /twice/);
  });
});
