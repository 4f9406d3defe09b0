import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { TestStack } from './stack.js';

/**
 * A Runway process of its own (a service's main, a worker) on the stack's NATS and database;
 * resolves with the child and the match of `ready` once its stdout shows it.
 */
export function startStackProcess(
  s: TestStack,
  entry: string,
  ready: RegExp,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, [join(process.cwd(), entry)], {
    env: {
      ...process.env,
      ...s.env.childEnv(),
      NATS_URL: s.env.natsUrl,
      DATABASE_URL: s.env.databaseUrl,
      RUNWAY_DATA_DIR: s.dataDir,
      RUNWAY_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`${entry} did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ child, match: m });
      }
    });
    child.once('exit', (code) => reject(new Error(`${entry} exited with ${code}: ${out}`)));
  });
}
