import { readdirSync, readFileSync } from 'node:fs';

/**
 * Host pids of the live (non-zombie) processes whose command line holds `token`. Works for
 * processes inside a run's sandbox too, whose own pids are those of their PID namespace.
 */
export function livePidsWithArg(token: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (!args.some((a) => a.includes(token))) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state !== 'Z' && state !== 'X') out.push(Number(name));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}
