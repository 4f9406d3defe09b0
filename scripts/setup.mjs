#!/usr/bin/env node
// Sets up what Runway needs on this machine, idempotently: npm packages from the lock file,
// nats-server (apt on Debian/Ubuntu as root), and the TypeScript build.
// Flags: --python also prepares the Python environment used by runs and tests (dlt, duckdb).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');

function say(msg) {
  if (!quiet) process.stderr.write(`[setup] ${msg}\n`);
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, {
    cwd: root,
    stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit',
    ...opts,
  });
  if (r.status !== 0) {
    process.stderr.write(`[setup] failed: ${cmd} ${argv.join(' ')} (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
}

function has(cmd, argv = ['--version']) {
  return spawnSync(cmd, argv, { stdio: 'ignore' }).status === 0;
}

// 1. npm packages, from the lock file, when the lock file changed since the last install.
const lock = readFileSync(join(root, 'package-lock.json'));
const lockHash = createHash('sha256').update(lock).digest('hex');
const marker = join(root, 'node_modules', '.runway-lock-hash');
if (!existsSync(marker) || readFileSync(marker, 'utf8') !== lockHash) {
  say('installing npm packages (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund']);
  writeFileSync(marker, lockHash);
}

// 2. nats-server.
const natsCandidates = ['nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server'];
if (!natsCandidates.some((c) => has(c))) {
  const isRoot = process.getuid?.() === 0;
  if (isRoot && has('apt-get', ['--version'])) {
    say('installing nats-server with apt-get');
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', 'nats-server'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } else {
    process.stderr.write(
      'nats-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install nats-server; ' +
        'elsewhere see https://docs.nats.io/running-a-nats-service/introduction/installation) or set NATS_URL.\n',
    );
    process.exit(1);
  }
}

// 2b. bubblewrap: every run executes in its sandbox (unless RUNWAY_SANDBOX=off).
if (process.env.RUNWAY_SANDBOX !== 'off' && !['bwrap', '/usr/bin/bwrap'].some((c) => has(c))) {
  const isRoot = process.getuid?.() === 0;
  if (isRoot && has('apt-get', ['--version'])) {
    say('installing bubblewrap with apt-get (the run sandbox)');
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', 'bubblewrap'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } else {
    process.stderr.write(
      'bubblewrap is not installed: runs execute in its sandbox. Install it (Debian/Ubuntu: sudo apt-get ' +
        'install bubblewrap), or set RUNWAY_SANDBOX=off to run pipelines unsandboxed (trusted single-user mode).\n',
    );
    process.exit(1);
  }
}

// 3. Python environment for runs (dlt + duckdb), only when asked.
if (args.has('--python')) {
  const venv = join(root, '.venv');
  const py = join(venv, 'bin', 'python');
  const want = readFileSync(join(root, 'requirements.txt'), 'utf8');
  const stamp = join(venv, '.runway-req-hash');
  const reqHash = createHash('sha256').update(want).digest('hex');
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== reqHash) {
    say('preparing the Python environment (.venv: dlt, duckdb)');
    if (!existsSync(py)) run(process.env.RUNWAY_BOOTSTRAP_PYTHON ?? 'python3', ['-m', 'venv', venv]);
    run(py, [
      '-m',
      'pip',
      'install',
      '-q',
      '--disable-pip-version-check',
      '-r',
      join(root, 'requirements.txt'),
    ]);
    writeFileSync(stamp, reqHash);
  }
}

// 4. Build.
if (!args.has('--no-build')) {
  say('building (tsc)');
  run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json']);
}
