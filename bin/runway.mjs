#!/usr/bin/env node
// `npx runway …` in a checkout. Needs the build (npm start or npm run build makes it).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { useSupportedNode } from '../scripts/node.mjs';

// Node ≥ 22: under an older one, re-run under .tools/node (Node 24), without a notice on every command.
await useSupportedNode({ quiet: true });

const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'libs', 'cli', 'src', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write('runway: not built yet: run `npm run build` (or `npm start`) first\n');
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
