import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/**
 * The servers Runway starts itself (nats-server, PostgreSQL) run in their own session and process
 * group (`detached`): Ctrl-C in a terminal signals the terminal's foreground group, which then
 * reaches only Node, and Node stops the services first and the servers last. They still die with
 * Node: on Linux through `setpriv --pdeathsig` (the kernel signals them when Node dies, even by
 * SIGKILL); everywhere through an exit hook of this process (process.exit, an uncaught error).
 */
export interface ServerProcessOptions {
  /** What the server gets when Node dies: its graceful (or fast) shutdown signal. */
  deathSignal: NodeJS.Signals;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
}

let setprivPath: string | null | undefined;
/** util-linux's setpriv when it knows `--pdeathsig` (Linux); null elsewhere. */
function setpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (process.platform === 'linux') {
    for (const candidate of ['/usr/bin/setpriv', '/bin/setpriv']) {
      if (!existsSync(candidate)) continue;
      const r = spawnSync(candidate, ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore' });
      if (r.status === 0) {
        setprivPath = candidate;
        break;
      }
    }
  }
  return setprivPath;
}

/** Whether the servers started here die with Node even when Node is SIGKILLed. */
export function serversDieWithNode(): boolean {
  return setpriv() !== null;
}

/**
 * Spawns a server out of the terminal's process group, tied to this process's life (see above).
 * Its pid is the server's own (setpriv execs it). stdin is ignored; stdout and stderr are pipes.
 */
export function spawnServer(
  command: string,
  args: readonly string[],
  opts: ServerProcessOptions,
): ChildProcess {
  const guard = setpriv();
  const spawnOptions: SpawnOptions = {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  };
  const signalName = opts.deathSignal.replace(/^SIG/, '');
  const child = guard
    ? spawn(guard, ['--pdeathsig', signalName, '--', command, ...args], spawnOptions)
    : spawn(command, [...args], spawnOptions);
  // A spawn that fails (no such binary, not executable) is reported by the caller's wait for the
  // server (it never answers); without a listener the 'error' event would end this process.
  child.on('error', (err) => child.stderr?.emit('data', Buffer.from(`${command}: ${err.message}\n`)));
  running.set(child, opts.deathSignal);
  if (running.size === 1) process.on('exit', killRunning);
  child.once('exit', () => {
    running.delete(child);
    if (running.size === 0) process.off('exit', killRunning);
  });
  return child;
}

/** The servers started here that still run, with their death signal (one exit hook for all). */
const running = new Map<ChildProcess, NodeJS.Signals>();
function killRunning(): void {
  for (const [child, signal] of running)
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
}

/** Whether `pid` is a live process (a zombie, dead but not yet reaped, counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S …": the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS): kill(0) answered
  }
}

/** Keeps the last `max` characters of a process's output, for an error message. */
export function outputTail(child: ChildProcess, max = 2_000): () => string {
  let tail = '';
  const add = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-max);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => tail.trim();
}
