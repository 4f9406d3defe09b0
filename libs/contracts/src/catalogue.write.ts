/**
 * Writes the public event catalogue's generated files (docs/events/*.schema.json,
 * docs/events/catalogue.json, the table of docs/events.md) from the code: `npm run events:catalogue`
 * (from the repository root). With `--check`, writes nothing and exits 1 when a file differs.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generatedCatalogueFiles } from './catalogue.generate.js';

const root = process.cwd();
const check = process.argv.includes('--check');
const read = (path: string): string | undefined => {
  try {
    return readFileSync(join(root, path), 'utf8');
  } catch {
    return undefined;
  }
};
let stale = 0;
for (const [path, content] of await generatedCatalogueFiles(root)) {
  if (read(path) === content) continue;
  stale++;
  if (check) {
    process.stderr.write(`${path}: differs from the code (npm run events:catalogue)\n`);
    continue;
  }
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
  process.stdout.write(`wrote ${path}\n`);
}
if (check && stale > 0) process.exitCode = 1;
