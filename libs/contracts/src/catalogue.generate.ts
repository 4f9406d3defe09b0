/**
 * The catalogue's generated files as they are checked in: the code's (catalogue.ts) in the
 * repository's prettier style. A build-time tool (prettier is a dev dependency): used by
 * catalogue.write.ts (`npm run events:catalogue`) and catalogue.spec.ts, never by a service.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as prettier from 'prettier';
import { catalogueFiles, withCatalogueTable } from './catalogue.js';

/** Path relative to `root` → content, for every generated file (docs/events.md included). */
export async function generatedCatalogueFiles(root: string): Promise<Map<string, string>> {
  const files = catalogueFiles();
  files.set('docs/events.md', withCatalogueTable(readFileSync(join(root, 'docs/events.md'), 'utf8')));
  const out = new Map<string, string>();
  for (const [path, content] of files) {
    const filepath = join(root, path);
    const options = (await prettier.resolveConfig(filepath)) ?? {};
    out.set(path, await prettier.format(content, { ...options, filepath }));
  }
  return out;
}
