import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeConfigurationFiles,
  encodeConfigurationFiles,
  MalformedUploadError,
} from './configuration.rpc.js';

describe('configuration upload framing', () => {
  it('round-trips paths (UTF-8) and binary contents, and an empty file list', () => {
    const files = [
      { path: 'config.toml', content: Buffer.from('a = 1\n') },
      { path: 'déjà/prod.secrets.toml', content: Buffer.from([0, 255, 10]) },
      { path: 'empty.config.toml', content: Buffer.alloc(0) },
    ];
    const back = decodeConfigurationFiles(encodeConfigurationFiles(files));
    assert.deepEqual(
      back.map((f) => [f.path, Buffer.from(f.content).toString('hex')]),
      files.map((f) => [f.path, f.content.toString('hex')]),
    );
    assert.deepEqual(decodeConfigurationFiles(encodeConfigurationFiles([])), []);
  });
  it('refuses truncated or malformed input', () => {
    const buf = encodeConfigurationFiles([{ path: 'config.toml', content: Buffer.from('a = 1\n') }]);
    assert.throws(() => decodeConfigurationFiles(buf.subarray(0, buf.length - 1)), MalformedUploadError);
    assert.throws(() => decodeConfigurationFiles(buf.subarray(0, 2)), MalformedUploadError);
    const bad = Buffer.concat([Buffer.from([0, 0, 0, 1, 0xff]), Buffer.from([0, 0, 0, 0])]);
    assert.throws(() => decodeConfigurationFiles(bad), /UTF-8/);
    const emptyPath = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]);
    assert.throws(() => decodeConfigurationFiles(emptyPath), MalformedUploadError);
  });
});
