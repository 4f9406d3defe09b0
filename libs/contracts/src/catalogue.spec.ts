import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generatedCatalogueFiles } from './catalogue.generate.js';
import { isPublicEventType, PUBLIC_EVENTS, publicEventJsonSchema, publicEventSubjects } from './catalogue.js';
import { integrationRegistry } from './registry.js';

const root = process.cwd();
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** Every property name anywhere in a JSON Schema. */
function propertyNames(schema: unknown, out: string[] = []): string[] {
  if (Array.isArray(schema)) for (const s of schema) propertyNames(s, out);
  else if (schema && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k === 'properties' && v && typeof v === 'object') out.push(...Object.keys(v));
      propertyNames(v, out);
    }
  }
  return out;
}

describe('public event catalogue', () => {
  it('the checked-in schemas, index and docs/events.md table are what the code generates (npm run events:catalogue)', async () => {
    const files = await generatedCatalogueFiles(root);
    assert.ok(files.has('docs/events.md'));
    assert.equal(files.size, PUBLIC_EVENTS.length + 2);
    for (const [path, content] of files) {
      assert.equal(read(path), content, `${path} differs from the code: run npm run events:catalogue`);
    }
  });

  it('docs/events holds no schema of an unknown type or of a version newer than the code’s', () => {
    for (const f of readdirSync(join(root, 'docs/events')).filter((n) => n.endsWith('.schema.json'))) {
      const m = /^([A-Za-z]+)\.v(\d+)\.schema\.json$/.exec(f);
      assert.ok(m, `${f}: not <Type>.v<N>.schema.json`);
      const e = PUBLIC_EVENTS.find((p) => p.definition.type === m[1]);
      assert.ok(e, `${f}: ${m[1]} is not a public event`);
      // Older versions stay (subscribers may still read them); never one ahead of the code.
      assert.ok(Number(m[2]) <= e.definition.version, `${f}: newer than version ${e.definition.version}`);
    }
  });

  it('holds the public integration events only, each decodable by the integration registry', () => {
    const registry = integrationRegistry();
    for (const e of PUBLIC_EVENTS) {
      assert.ok(registry.has(e.definition.type), e.definition.type);
      assert.equal(registry.versionOf(e.definition.type), e.definition.version);
    }
    for (const t of [
      'RunRequested',
      'RunFailed',
      'RunCompleted',
      'PipelineReported',
      'DeploymentCreated',
      'ConfigurationCreated',
      'JobCreated',
      'JobUpdated',
      'JobDeleted',
    ]) {
      assert.ok(isPublicEventType(t), t);
    }
    for (const t of [
      'DataKeyCreated',
      'DeploymentFilesStaged',
      'FireQueued',
      'RunEnded',
      'RunFinalizing',
      'RunCancelRequested',
      'UserRegistered',
      'WorkspaceCreated',
      'EmailClaimed',
    ]) {
      assert.ok(!isPublicEventType(t), `${t} is internal`);
    }
    assert.deepEqual(publicEventSubjects('p'), [
      'p.evt.*.configuration.*',
      'p.evt.*.deployment.*',
      'p.evt.*.job.*',
      'p.evt.*.run.*',
      'p.evt.*.runlog.*',
    ]);
  });

  it('no public payload has a field for secret material', () => {
    for (const e of PUBLIC_EVENTS) {
      const names = propertyNames(publicEventJsonSchema(e));
      for (const n of names) {
        assert.doesNotMatch(
          n,
          /password|secret|token|wrapped|credential|value/i,
          `${e.definition.type}.${n}`,
        );
      }
    }
  });
});
