import type { GlobalOptions } from '../session.js';

/** `--json` prints the data as JSON; otherwise the human rendering. */
export function printOut(g: GlobalOptions, data: unknown, human: () => string): void {
  process.stdout.write(g.json ? JSON.stringify(data, null, 2) + '\n' : human());
}
