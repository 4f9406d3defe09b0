import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ProcessExecutor } from '../executor/process-executor.js';
import {
  DependencyEnvironments,
  environmentKey,
  findDeclaration,
  requirementsFromJson,
  selectRequirements,
  parseRequirementsJson,
  type DependencyDeclaration,
} from './dependencies.js';

const base = { pythonVersion: '3.11.7', python: '/usr/bin/python3', uvVersion: 'x', indexUrl: undefined };

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'runway-deps-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

describe('what a deployment declares', () => {
  it('prefers pyproject.toml + uv.lock, then [project] dependencies, then requirements.txt, then requirements.json', () => {
    const json = JSON.stringify({
      engine_version: 1,
      default_groups: ['main'],
      groups: { main: ['six==1.16.0'] },
    });
    const all = dirWith({
      'pyproject.toml': '[project]\nname="x"\nversion="0"\ndependencies=["a==1"]\n',
      'uv.lock': 'version = 1\n',
      'requirements.txt': 'b==2\n',
    });
    assert.equal(findDeclaration(all, json)?.source, 'uv.lock');
    assert.deepEqual(Object.keys(findDeclaration(all, json)!.files).sort(), ['pyproject.toml', 'uv.lock']);
    rmSync(join(all, 'uv.lock'));
    assert.deepEqual(findDeclaration(all, json), {
      source: 'pyproject.toml',
      files: { 'requirements.txt': 'a==1\n' },
    });
    writeFileSync(join(all, 'pyproject.toml'), '[project]\nname="x"\nversion="0"\n');
    assert.equal(findDeclaration(all, json)?.source, 'requirements.txt');
    writeFileSync(join(all, 'requirements.txt'), '# nothing\n\n');
    assert.deepEqual(findDeclaration(all, json), {
      source: 'requirements.json',
      files: { 'requirements.txt': 'six==1.16.0\n' },
    });
    assert.equal(findDeclaration(all, undefined), undefined, 'nothing declared: the configured interpreter');
    rmSync(all, { recursive: true });
  });

  it("reads requirements.json's default groups (engine 1 and 2), a launcher's group and dlt_version", () => {
    const engine2 = JSON.stringify({
      engine_version: 2,
      python_version: '3.11',
      dlt_version: { name: 'dlt', extras: ['duckdb'], version: '1.26.0', mode: 'pypi' },
      default_groups: ['main'],
      groups: { main: ['requests>=2', 'pandas'], dev: ['pytest'] },
      launcher_requirements: { 'dlt._workspace.deployment.launchers.job': ['croniter'] },
    });
    assert.deepEqual(requirementsFromJson(engine2), ['requests>=2', 'pandas', 'dlt[duckdb]==1.26.0']);
    assert.deepEqual(requirementsFromJson(engine2, { launcher: 'dlt._workspace.deployment.launchers.job' }), [
      'requests>=2',
      'pandas',
      'croniter',
      'dlt[duckdb]==1.26.0',
    ]);
    const listsDlt = JSON.stringify({
      engine_version: 2,
      dlt_version: { name: 'dlt', version: '1.26.0', mode: 'pypi' },
      default_groups: ['main'],
      groups: { main: ['dlt[hub]==1.26.0'] },
    });
    assert.deepEqual(requirementsFromJson(listsDlt), ['dlt[hub]==1.26.0']);
    const emptyMain = JSON.stringify({ engine_version: 1, default_groups: ['main'], groups: { main: [] } });
    assert.deepEqual(requirementsFromJson(emptyMain), []);
    assert.throws(() => requirementsFromJson('{'), /requirements\.json is not JSON/);
    assert.throws(() => requirementsFromJson('{"engine_version": 9}'), /engine_version/);
  });

  it("selects a manifest job's requirements by dlt 1.26's rule: default groups + the job's groups + its launcher's", () => {
    const L = 'dlt._workspace.deployment.launchers';
    // As dlt 1.26.0's export_workspace_requirements writes it (a requirements.txt with tomli-w).
    const launchers = {
      [`${L}.job`]: ['botocore', 'croniter', 'dlt==1.26.0', 'dlthub', 's3fs'],
      [`${L}.marimo`]: ['croniter', 'dlt==1.26.0', 'dlthub', 'marimo', 'uvicorn'],
      [`${L}.mcp`]: ['croniter', 'dlt==1.26.0', 'dlthub', 'fastmcp', 'uvicorn'],
      [`${L}.dashboard`]: ['croniter', 'dlt==1.26.0', 'dlthub'],
    };
    const dashboard = ['croniter', 'dlthub', 'ibis-framework', 'marimo', 'pyarrow'];
    const r = parseRequirementsJson(
      JSON.stringify({
        engine_version: 1,
        python_version: '3.11',
        default_groups: ['main'],
        groups: { main: ['tomli-w==1.2.0'], 'jobs.workspace.dashboard': dashboard, ml: ['numpy==2.0.0'] },
        launcher_requirements: launchers,
      }),
    );
    // A job without a launcher (a script by file): the default groups only.
    assert.deepEqual(selectRequirements(r), ['tomli-w==1.2.0']);
    assert.deepEqual(selectRequirements(r, { launcher: `${L}.marimo` }), [
      'tomli-w==1.2.0',
      'croniter',
      'dlt==1.26.0',
      'dlthub',
      'marimo',
      'uvicorn',
    ]);
    // dlt's dashboard job: require.dependency_groups on top of the defaults, then its launcher's (deduplicated).
    assert.deepEqual(
      selectRequirements(r, { launcher: `${L}.dashboard`, dependencyGroups: ['jobs.workspace.dashboard'] }),
      ['tomli-w==1.2.0', 'croniter', 'dlthub', 'ibis-framework', 'marimo', 'pyarrow', 'dlt==1.26.0'],
    );
    assert.deepEqual(selectRequirements(r, { launcher: `${L}.mcp`, dependencyGroups: ['ml', 'main'] }), [
      'tomli-w==1.2.0',
      'numpy==2.0.0',
      'croniter',
      'dlt==1.26.0',
      'dlthub',
      'fastmcp',
      'uvicorn',
    ]);
    assert.throws(
      () => selectRequirements(r, { launcher: `${L}.job`, dependencyGroups: ['gpu'] }),
      /requirements\.json has no dependency group "gpu".*groups: main, jobs\.workspace\.dashboard, ml/,
    );
    // Nothing of the workspace's own (an empty main; the dashboard group is dlt's): the configured interpreter.
    const empty = parseRequirementsJson(
      JSON.stringify({
        engine_version: 1,
        default_groups: ['main'],
        groups: { main: [], 'jobs.workspace.dashboard': dashboard },
        launcher_requirements: launchers,
      }),
    );
    assert.deepEqual(selectRequirements(empty, { launcher: `${L}.marimo` }), []);
    assert.deepEqual(
      selectRequirements(empty, {
        launcher: `${L}.dashboard`,
        dependencyGroups: ['jobs.workspace.dashboard'],
      }),
      [],
    );
    // Several default groups: their union, in order.
    const two = parseRequirementsJson(
      JSON.stringify({
        engine_version: 1,
        default_groups: ['main', 'extra'],
        groups: { main: ['a'], extra: ['b', 'a'] },
      }),
    );
    assert.deepEqual(selectRequirements(two, { launcher: `${L}.job` }), ['a', 'b']);
  });

  it('refuses a pyproject.toml that is not TOML, naming it', () => {
    const dir = dirWith({ 'pyproject.toml': '[project\n' });
    assert.throws(() => findDeclaration(dir, undefined), /pyproject\.toml/);
    rmSync(dir, { recursive: true });
  });

  it('keys an environment by its files, the interpreter, the platform and the index', () => {
    const a: DependencyDeclaration = { source: 'requirements.txt', files: { 'requirements.txt': 'x==1\n' } };
    const k = environmentKey(a, base);
    assert.match(k, /^[0-9a-f]{64}$/);
    assert.equal(environmentKey({ ...a }, { ...base }), k);
    assert.notEqual(environmentKey({ ...a, files: { 'requirements.txt': 'x==2\n' } }, base), k);
    assert.notEqual(environmentKey(a, { ...base, pythonVersion: '3.12.1' }), k);
    assert.notEqual(environmentKey(a, { ...base, indexUrl: 'https://mirror.example/simple' }), k);
  });
});

describe('the environment cache', () => {
  it('removes the least recently used environments beyond the count and size caps, and unfinished ones', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'runway-deps-gc-'));
    const make = (ws: string, n: number, lastUsed: number, bytes: number, marker = true) => {
      const key = String(n).repeat(64).slice(0, 64);
      const dir = join(dataDir, 'deps', ws, 'envs', key);
      mkdirSync(dir, { recursive: true });
      if (marker) {
        const m = join(dir, '.runway-env.json');
        writeFileSync(m, JSON.stringify({ key, source: 'requirements.txt', createdAt: 'x', bytes }));
        utimesSync(m, lastUsed / 1000, lastUsed / 1000);
      }
      return key;
    };
    const now = Date.now();
    const oldest = make('ws1', 1, now - 50_000, 10);
    const old = make('ws2', 2, now - 40_000, 10);
    const recent = make('ws1', 3, now - 30_000, 10);
    const newest = make('ws2', 4, now - 20_000, 10);
    const unfinished = make('ws1', 5, now, 0, false);
    const envs = (max: number, maxBytes: number) =>
      new DependencyEnvironments(
        {
          dataDir,
          uv: '/nonexistent/uv',
          python: '/usr/bin/python3',
          toolPaths: [],
          executor: new ProcessExecutor(),
          baseEnv: {},
          indexUrl: undefined,
          maxEnvironments: max,
          maxBytes,
          buildTimeoutMs: 1_000,
        },
        '3.11.7',
      );
    const left = () => ['ws1', 'ws2'].flatMap((ws) => readdirSync(join(dataDir, 'deps', ws, 'envs'))).sort();
    envs(3, 0).collectGarbage();
    assert.deepEqual(left(), [old, recent, newest].sort(), 'the oldest and the unfinished one went');
    assert.ok(!left().includes(unfinished));
    envs(10, 15).collectGarbage();
    assert.deepEqual(left(), [newest], 'past 15 bytes: the least recently used went first');
    void oldest;
    rmSync(dataDir, { recursive: true });
  });
});

describe('one build per environment across worker processes (the lock directory)', () => {
  const decl: DependencyDeclaration = { source: 'requirements.txt', files: { 'requirements.txt': 'x==1\n' } };
  const envsFor = (dataDir: string) =>
    new DependencyEnvironments(
      {
        dataDir,
        uv: '/nonexistent/uv',
        python: '/usr/bin/python3',
        toolPaths: [],
        executor: new ProcessExecutor(),
        baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        indexUrl: undefined,
        maxEnvironments: 20,
        maxBytes: 0,
        buildTimeoutMs: 30_000,
      },
      '3.11.7',
    );

  it('waits while a live process holds the lock, then uses what it built', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'runway-deps-lock-'));
    const envs = envsFor(dataDir);
    const key = envs.keyOf(decl);
    const envDir = join(dataDir, 'deps', 'ws', 'envs', key);
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      mkdirSync(`${envDir}.lock`, { recursive: true });
      writeFileSync(join(`${envDir}.lock`, 'owner'), String(other.pid));
      const lines: string[] = [];
      const result = envs.ensure('ws', 'run-1', decl, (l) => lines.push(l));
      await new Promise((r) => setTimeout(r, 600));
      // The other process finishes its build: environment, marker, lock gone.
      mkdirSync(envDir, { recursive: true });
      writeFileSync(
        join(envDir, '.runway-env.json'),
        JSON.stringify({ key, source: 'requirements.txt', createdAt: 'x', bytes: 1 }),
      );
      rmSync(`${envDir}.lock`, { recursive: true });
      const r = await result;
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.cacheHit, true, 'built by the other process, not here (uv does not exist here)');
      assert.ok(
        lines.some((l) => /waiting for the environment [0-9a-f]{12} that another worker is building/.test(l)),
      );
      if (r.ok) r.release();
    } finally {
      other.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("takes over a dead process's lock, and a failed build leaves nothing behind", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'runway-deps-lock-'));
    const envs = envsFor(dataDir);
    const key = envs.keyOf(decl);
    const envDir = join(dataDir, 'deps', 'ws', 'envs', key);
    const dead = spawn('true', { stdio: 'ignore' });
    await new Promise((r) => dead.once('exit', r));
    try {
      mkdirSync(`${envDir}.lock`, { recursive: true });
      writeFileSync(join(`${envDir}.lock`, 'owner'), String(dead.pid));
      const r = await envs.ensure('ws', 'run-2', decl, () => undefined);
      assert.equal(r.ok, false, 'it built (and uv, which does not exist here, failed)');
      if (!r.ok) assert.match(r.message, /uv failed \(exit code 127\)/);
      assert.equal(existsSync(envDir), false, 'a failed build is removed');
      assert.equal(existsSync(`${envDir}.lock`), false, 'the lock is released');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
