import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

// The CLI from any directory: the checkout installed globally (`npm install -g <checkout>`, what
// `npm link` does) under a prefix in a temp dir, run from a dlt workspace outside the checkout.
const root = process.cwd();
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

describe('runway from any directory (npm link / npm install -g)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'runway-cli-install-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('installs the `runway` command and runs it outside the checkout', () => {
    const prefix = join(tmp, 'prefix');
    const install = spawnSync(
      'npm',
      ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', root],
      { cwd: tmp, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(install.status, 0, install.stderr);
    const bin = join(prefix, 'bin', 'runway');
    assert.equal(realpathSync(bin), join(realpathSync(root), 'bin', 'runway.mjs'), 'a link to the checkout');

    const workspace = join(tmp, 'my-dlt-workspace');
    mkdirSync(workspace);
    writeFileSync(join(workspace, 'pipeline.py'), 'import dlt\n');
    const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` };
    const v = spawnSync('runway', ['--version'], { cwd: workspace, env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout, `runway ${version}\n`);
    const help = spawnSync('runway', ['--help'], { cwd: workspace, env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /Usage: runway/);
    // A command that needs an instance fails with Runway's own message, not npm's or Node's.
    const none = spawnSync('runway', ['job', 'list'], {
      cwd: workspace,
      env: { ...env, RUNWAY_DATA_DIR: join(tmp, 'no-instance'), RUNWAY_URL: 'http://127.0.0.1:9' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.notEqual(none.status, 0);
    assert.doesNotMatch(none.stderr, /could not determine executable|Cannot find module|\n\s+at /);
  });
});
