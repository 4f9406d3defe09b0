#!/usr/bin/env node
// The `runway` command: `npx runway …` in the checkout, or from any directory once linked
// (`npm link` in the checkout, or `npm install -g <checkout>`). Needs the build (npm start or
// npm run build makes it). `runway --version` prints the version without it.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { useSupportedNode } from '../scripts/node.mjs';

// Node ≥ 22: under an older one, re-run under .tools/node (Node 24), without a notice on every command.
await useSupportedNode({ quiet: true });

// The checkout this file is in (a linked or globally installed `runway` resolves its symlink).
const checkout = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { version } = JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8'));
  process.stdout.write(`runway ${version}\n`);
  process.exit(0);
}

const entry = join(checkout, 'dist', 'libs', 'cli', 'src', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write('runway: not built yet: run `npm run build` (or `npm start`) first\n');
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(args);
