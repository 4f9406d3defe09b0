import type { Readable } from 'node:stream';

/** What to run, and what of the host it may see. */
export interface ExecSpec {
  argv: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd: string;
  /** The workspace the process runs for: its sandbox identity. */
  workspaceId: string;
  /** Directories the process may write (they exist; the worker hands them over with `grant`). */
  writable: readonly string[];
  /** Files or directories it may read besides the system (interpreter, virtualenv, tools). */
  readable: readonly string[];
  /**
   * `host` (default): the host's network. `none`: a network namespace of its own with only
   * loopback (the sandbox; the unsandboxed executor cannot do it and keeps the host's).
   */
  network?: 'host' | 'none';
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** Enough to find and end what is left of a run after its worker died (kept with the run's files). */
export interface ProcessHandle {
  executor: string;
  pid: number;
}

/** A started run process and everything it starts. */
export interface RunProcess {
  /** The host pid of the process the executor started (the run's `pid`). */
  readonly pid: number;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** The main process exited. */
  readonly exited: Promise<ProcessExit>;
  /** stdout and stderr are closed. */
  readonly closed: Promise<void>;
  readonly handle: ProcessHandle;
  /** Sends the signal to every process of the run (SIGKILL ends them all, daemonized or not). */
  signal(sig: 'SIGTERM' | 'SIGKILL'): void;
  /** Whether any process of the run is alive. */
  alive(): boolean;
  /** How many processes of the run are alive. */
  liveCount(): number;
  /** True once no process of the run is left; false after `timeoutMs`. */
  waitGone(timeoutMs: number): Promise<boolean>;
}

/**
 * Where and how a run's processes execute. The run lifecycle (claim, lease, status, logs) lives in
 * the worker; an executor only starts processes and ends them. `local-sandbox` (bubblewrap) is the
 * default; `local-process` is the trusted single-user mode (RUNWAY_SANDBOX=off). A container or
 * Kubernetes executor can follow behind the same interface.
 */
export interface RunExecutor {
  readonly name: 'local-sandbox' | 'local-process';
  /** The isolation and limits in force, in one line (the worker logs it at start). */
  readonly description: string;
  /** Gives the directories (recursively) to the identity the workspace's processes run as. */
  grant(workspaceId: string, dirs: readonly string[]): void;
  spawn(spec: ExecSpec): RunProcess;
  /** Ends whatever is left of a process a previous worker started. */
  killOrphan(handle: ProcessHandle): Promise<void>;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Runs a short helper through the executor and collects its output (pipeline reports). */
export async function runToCompletion(
  executor: RunExecutor,
  spec: ExecSpec,
  timeoutMs: number,
): Promise<{ stdout: string; stderrTail: string; code: number | null; error?: string }> {
  let proc: RunProcess;
  try {
    proc = executor.spawn(spec);
  } catch (err) {
    return {
      stdout: '',
      stderrTail: '',
      code: null,
      error: err instanceof Error ? err.message : String(err),
    };
  }
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const t = setTimeout(() => proc.signal('SIGKILL'), timeoutMs);
  const exit = await proc.exited;
  clearTimeout(t);
  if (proc.alive()) proc.signal('SIGKILL');
  await Promise.race([proc.closed, sleep(2_000)]);
  return { stdout: out, stderrTail: err, code: exit.code };
}
