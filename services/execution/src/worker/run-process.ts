import type { Logger } from '@nestjs/common';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { ExecSpec, ProcessHandle, RunExecutor, RunProcess } from '../executor/index.js';
import type { RunLeases } from './leases.js';
import type { OutputCapture } from './output.js';
import { groupAlive, signalGroup, waitGroupGone } from './process-group.js';

/**
 * What a worker keeps beside a run's directory (`<workDir>/<runId>.json`, 0600): enough for the
 * next worker on this host to end what is left of the run if this one dies.
 */
export interface RunMeta {
  runId: string;
  workspaceId: string;
  workerId: string;
  pid: number | null;
  handle?: ProcessHandle;
}

export function writeRunMeta(file: string, meta: RunMeta): void {
  writeFileSync(file, JSON.stringify(meta), { mode: 0o600 });
}

/**
 * Starts the run's process through the executor (the sandbox), records it in the meta file and
 * sends its output lines to `capture` (read when each chunk arrives: it is set after the spawn).
 */
export function spawnRunProcess(
  executor: RunExecutor,
  spec: ExecSpec,
  metaFile: string,
  meta: Omit<RunMeta, 'pid' | 'handle'>,
  capture: () => OutputCapture | undefined,
): RunProcess {
  const proc = executor.spawn(spec);
  writeRunMeta(metaFile, { ...meta, pid: proc.pid, handle: proc.handle });
  proc.stdout.on('data', (c: Buffer) => capture()?.write('stdout', c));
  proc.stderr.on('data', (c: Buffer) => capture()?.write('stderr', c));
  return proc;
}

/** SIGTERM to every process of the run, SIGKILL after the grace period. */
export async function terminateRunProcess(
  proc: RunProcess,
  graceMs: number,
  note: (line: string) => void,
): Promise<void> {
  proc.signal('SIGTERM');
  if (!(await proc.waitGone(graceMs))) {
    note(`the run's processes are still alive after ${Math.round(graceMs / 1000)} s: SIGKILL`);
    proc.signal('SIGKILL');
  }
}

/**
 * After the main process exited: whatever it left behind in its group goes too (unless a
 * termination is under way, which is waited for), then waits until no process of the run is left.
 */
export async function reapRunProcess(
  proc: RunProcess,
  terminating: Promise<void> | undefined,
  note: (line: string) => void,
  warn: (line: string) => void,
): Promise<void> {
  if (terminating) await terminating;
  else if (proc.alive()) {
    const left = proc.liveCount();
    if (left > 0) note(`the process exited, ending ${left} process(es) it left behind`);
    proc.signal('SIGKILL');
  }
  if (!(await proc.waitGone(30_000))) warn(`processes of pid ${proc.pid} survive SIGKILL`);
}

/** What cleanupOrphans needs of a meta file (any other field is ignored). */
const orphanMeta = z.object({
  pid: z.number().int().nullable().optional(),
  workerId: z.string().optional(),
  handle: z.object({ executor: z.string(), pid: z.number().int() }).optional(),
});

/** Run directories left by a worker that died: their processes are killed and their files (secrets) removed. */
export async function cleanupOrphans(opts: {
  workDir: string;
  workerId: string;
  leases: RunLeases;
  executor: RunExecutor;
  logger: Logger;
}): Promise<void> {
  const { workDir } = opts;
  let names: string[];
  try {
    names = readdirSync(workDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    const runId = name.slice(0, -'.json'.length);
    let meta: z.infer<typeof orphanMeta> = {};
    try {
      meta = orphanMeta.parse(JSON.parse(readFileSync(join(workDir, name), 'utf8')));
    } catch {
      /* unreadable: treat as orphan */
    }
    const lease = await opts.leases.get(runId).catch(() => undefined);
    if (lease && lease.workerId !== opts.workerId) continue; // another live worker on this host
    if (meta.handle && meta.handle.executor === opts.executor.name) {
      opts.logger.warn(`ending what is left of orphaned run ${runId} (pid ${meta.handle.pid})`);
      await opts.executor.killOrphan(meta.handle);
    } else if (meta.pid && groupAlive(meta.pid)) {
      opts.logger.warn(`killing the processes of orphaned run ${runId} (group ${meta.pid})`);
      signalGroup(meta.pid, 'SIGKILL');
      await waitGroupGone(meta.pid, 5_000);
    }
    rmSync(join(workDir, runId), { recursive: true, force: true });
    rmSync(join(workDir, name), { force: true });
  }
}
