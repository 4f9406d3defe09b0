import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { groupAlive, livePidsOfGroup, signalGroup, waitGroupGone } from '../worker/process-group.js';
import type { ExecSpec, ProcessExit, ProcessHandle, RunExecutor, RunProcess } from './executor.js';

/** Spawns `argv` detached (its own process group) and wires the common RunProcess parts. */
export function spawnDetached(
  argv: readonly string[],
  opts: { cwd: string; env: Readonly<Record<string, string>>; uid?: number; gid?: number },
): { pid: number; stdout: Readable; stderr: Readable; exited: Promise<ProcessExit>; closed: Promise<void> } {
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd,
    env: { ...opts.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
  });
  if (child.pid === undefined) {
    // The error event follows (ENOENT, EACCES): report it as a spawn error.
    child.once('error', () => undefined);
    throw new Error(`cannot start ${argv[0]}: not found or not executable`);
  }
  child.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = new Promise<ProcessExit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  return { pid: child.pid, stdout: child.stdout!, stderr: child.stderr!, exited, closed };
}

/**
 * RUNWAY_SANDBOX=off: runs as Runway's own user with only an environment allow-list, in a process
 * group of its own (a child that calls setsid escapes it). Trusted single-user mode only.
 */
export class ProcessExecutor implements RunExecutor {
  readonly name = 'local-process';
  readonly description =
    "UNSANDBOXED (RUNWAY_SANDBOX=off): runs execute as Runway's own user, see its files and outlive it if they call setsid";

  grant(): void {
    /* the processes run as this user: nothing to hand over */
  }

  spawn(spec: ExecSpec): RunProcess {
    const p = spawnDetached(spec.argv, { cwd: spec.cwd, env: spec.env });
    const pgid = p.pid;
    return {
      ...p,
      handle: { executor: this.name, pid: pgid },
      signal: (sig) => void signalGroup(pgid, sig),
      alive: () => groupAlive(pgid),
      liveCount: () => livePidsOfGroup(pgid).length,
      waitGone: (ms) => waitGroupGone(pgid, ms),
    };
  }

  async killOrphan(handle: ProcessHandle): Promise<void> {
    if (!groupAlive(handle.pid)) return;
    signalGroup(handle.pid, 'SIGKILL');
    await waitGroupGone(handle.pid, 5_000);
  }
}
