import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lchownSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
} from 'node:fs';
import { constants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isLive, resolveExecutable } from '../worker/process-group.js';
import { spawnDetached } from './process-executor.js';
import { sleep, type ExecSpec, type ProcessHandle, type RunExecutor, type RunProcess } from './executor.js';

export interface SandboxLimits {
  /** Address space of each process (RLIMIT_AS), bytes; 0 = unlimited. */
  memoryBytes: number;
  /** Processes (and threads) of the workspace's uid (RLIMIT_NPROC); 0 = unlimited. Only when Runway runs as root. */
  processes: number;
  /** Open files per process (RLIMIT_NOFILE); 0 = unchanged. */
  openFiles: number;
  /** Largest file a process may write (RLIMIT_FSIZE), bytes; 0 = unlimited. */
  fileBytes: number;
}

export interface SandboxOptions {
  limits: SandboxLimits;
  /** First uid of the per-workspace range (when Runway runs as root). */
  uidBase?: number;
  /** Size of the per-workspace uid range. */
  uidRange?: number;
}

export class SandboxUnavailableError extends Error {
  constructor(detail: string) {
    super(
      `the run sandbox (bubblewrap) does not work on this machine: ${detail}. ` +
        'Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and run Runway as root or with ' +
        'unprivileged user namespaces enabled; or set RUNWAY_SANDBOX=off to run pipelines unsandboxed as ' +
        "Runway's own user (trusted single-user mode only: a pipeline can then read Runway's keys)",
    );
    this.name = 'SandboxUnavailableError';
  }
}

/** Signal names by number, from Node's own table (bubblewrap reports a signalled command as 128 + n). */
const isSignal = (name: string): name is NodeJS.Signals => name in constants.signals;
const SIGNALS = new Map<number, NodeJS.Signals>();
for (const [name, n] of Object.entries(constants.signals)) if (isSignal(name)) SIGNALS.set(n, name);

/** A stable uid per workspace: fnv-1a of its id over the range. */
export function workspaceUid(workspaceId: string, base: number, range: number): number {
  let h = 0x811c9dc5;
  for (const ch of workspaceId) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return base + ((h >>> 0) % range);
}

/** The children of a process (Linux: /proc/<pid>/task/<pid>/children). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function pidNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/** Host pids of the live processes in a pid namespace. */
function pidsInNamespace(ns: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pidNamespace(pid) === ns && isLive(pid)) out.push(pid);
  }
  return out;
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

/**
 * Gives a tree to uid:gid (links themselves, never what they point to). A directory the uid owns
 * already is not walked: only the worker (root) writes into directories it has not handed over
 * yet, so a job's dlt data or venv, kept between runs, costs one lstat per run, not one per file.
 */
function chownTree(path: string, uid: number, gid: number): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (st.uid === uid && st.gid === gid) return;
  lchownSync(path, uid, gid);
  if (!st.isDirectory()) return;
  for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}

/**
 * local-sandbox: every run process executes in a bubblewrap sandbox. Its own mount, PID, IPC and
 * UTS namespaces: it sees a read-only system (/usr, /etc), the read-only paths it was given
 * (interpreter, virtualenv), a private /tmp, and writes only the directories it was given (its run
 * directory, the job's dlt data dir, home). Nothing else of the host (RUNWAY_DATA_DIR, other runs,
 * other workspaces, /root, /proc of other processes) exists inside. When Runway runs as root, the
 * process drops to a uid of its workspace (no capabilities, no new privileges); otherwise it keeps
 * Runway's uid inside a user namespace. The PID namespace's init is bubblewrap: when the main
 * process exits, or the worker dies (--die-with-parent), the kernel kills every other process of
 * the run, daemonized or not. Limits are rlimits (prlimit): cgroup v2 is not used.
 * Outbound network is shared with the host.
 */
export class SandboxExecutor implements RunExecutor {
  readonly name = 'local-sandbox';
  readonly description: string;
  private readonly root = process.getuid?.() === 0;
  private readonly uidBase: number;
  private readonly uidRange: number;
  private readonly system: { args: string[]; readable: string[] };

  private constructor(
    private readonly bwrap: string,
    private readonly prlimit: string | undefined,
    private readonly setpriv: string | undefined,
    private readonly opts: SandboxOptions,
  ) {
    this.uidBase = opts.uidBase ?? 1 << 30;
    this.uidRange = opts.uidRange ?? 1 << 30;
    this.system = systemMounts();
    const l = opts.limits;
    const parts = [
      `bubblewrap (${this.root ? 'a uid per workspace, no capabilities' : "Runway's uid in a user namespace"}; own mount/PID/IPC/UTS namespaces; shared network)`,
      `rlimits: memory ${l.memoryBytes ? `${Math.round(l.memoryBytes / 1048576)} MiB address space` : 'unlimited'}, processes ${this.root && l.processes ? `${l.processes} per workspace` : 'unlimited'}, open files ${l.openFiles || 'unchanged'}, file size ${l.fileBytes ? `${Math.round(l.fileBytes / 1048576)} MiB` : 'unlimited'}`,
    ];
    this.description = parts.join('; ');
  }

  /** Finds the tools and proves the sandbox works here; throws SandboxUnavailableError otherwise. */
  static create(opts: SandboxOptions): SandboxExecutor {
    const bwrap = resolveExecutable('bwrap') ?? (existsSync('/usr/bin/bwrap') ? '/usr/bin/bwrap' : undefined);
    if (!bwrap) throw new SandboxUnavailableError('bwrap is not installed');
    const prlimit = resolveExecutable('prlimit') ?? resolveExecutable('/usr/bin/prlimit');
    const setpriv = resolveExecutable('setpriv') ?? resolveExecutable('/usr/bin/setpriv');
    const root = process.getuid?.() === 0;
    if (root && !setpriv) throw new SandboxUnavailableError('setpriv (util-linux) is not installed');
    const needLimits = Object.values(opts.limits).some((v) => v > 0);
    if (needLimits && !prlimit) throw new SandboxUnavailableError('prlimit (util-linux) is not installed');
    const ex = new SandboxExecutor(bwrap, prlimit, setpriv, opts);
    const [cmd, ...args] = ex.argvFor({
      argv: ['/bin/sh', '-c', 'echo ok > /tmp/probe'],
      cwd: '/',
      workspaceId: 'probe',
      writable: [],
      readable: [],
      env: {},
    });
    const probe = spawnSync(cmd!, args, {
      encoding: 'utf8',
      env: { PATH: '/usr/bin:/bin' },
      timeout: 20_000,
    });
    if (probe.status !== 0)
      throw new SandboxUnavailableError(
        (probe.stderr || probe.error?.message || `exit ${probe.status ?? probe.signal}`).trim(),
      );
    return ex;
  }

  uidOf(workspaceId: string): number {
    return workspaceUid(workspaceId, this.uidBase, this.uidRange);
  }

  grant(workspaceId: string, dirs: readonly string[]): void {
    if (!this.root) return;
    const uid = this.uidOf(workspaceId);
    for (const d of dirs) chownTree(d, uid, uid);
  }

  /** The whole command line: [prlimit …] bwrap <namespaces and mounts> -- [prlimit …] [setpriv …] argv. */
  argvFor(spec: ExecSpec): string[] {
    const l = this.opts.limits;
    const rl: string[] = [];
    if (l.memoryBytes > 0) rl.push(`--as=${l.memoryBytes}`);
    if (l.processes > 0 && this.root) rl.push(`--nproc=${l.processes}`);
    if (l.openFiles > 0) rl.push(`--nofile=${l.openFiles}`);
    if (l.fileBytes > 0) rl.push(`--fsize=${l.fileBytes}`);
    rl.push('--core=0');
    const limits = this.prlimit ? [this.prlimit, ...rl, '--'] : [];
    const ns = [
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      '--hostname',
      'runway',
      '--die-with-parent',
      '--new-session',
    ];
    if (!this.root) ns.push('--unshare-user');
    if (spec.network === 'none') ns.push('--unshare-net');
    const mounts = [
      ...this.system.args,
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--perms',
      '01777',
      '--tmpfs',
      '/tmp',
    ];
    const binds: { path: string; rw: boolean }[] = [
      ...[...this.system.readable, ...spec.readable]
        .filter((p) => existsSync(p))
        .map((p) => ({ path: resolve(p), rw: false })),
      ...spec.writable.map((p) => ({ path: resolve(p), rw: true })),
    ];
    binds.sort((a, b) => a.path.split('/').length - b.path.split('/').length);
    // A readable path inside another bound path is already there.
    const inside = (p: string, q: string) => p !== q && p.startsWith(`${q}/`);
    for (let i = binds.length - 1; i >= 0; i--) {
      const b = binds[i]!;
      if (
        !b.rw &&
        (binds.some((o, j) => j !== i && inside(b.path, o.path)) ||
          SYSTEM_ROOTS.some((r) => inside(b.path, r)) ||
          binds.findIndex((o) => o.path === b.path) !== i)
      )
        binds.splice(i, 1);
    }
    const covered = (p: string) =>
      SYSTEM_ROOTS.some((r) => p === r || p.startsWith(`${r}/`)) ||
      binds.some((b) => p === b.path || p.startsWith(`${b.path}/`));
    const dirs = new Set<string>();
    for (const b of binds) {
      for (let d = dirname(b.path); d !== '/' && d !== '/tmp'; d = dirname(d)) if (!covered(d)) dirs.add(d);
    }
    for (const d of [...dirs].sort((a, b) => a.length - b.length)) mounts.push('--perms', '0755', '--dir', d);
    for (const b of binds) mounts.push(b.rw ? '--bind' : '--ro-bind', b.path, b.path);
    mounts.push('--chdir', spec.cwd);
    const inner: string[] = [];
    if (this.root) {
      const uid = this.uidOf(spec.workspaceId);
      inner.push(...limits);
      inner.push(
        this.setpriv!,
        `--reuid=${uid}`,
        `--regid=${uid}`,
        '--clear-groups',
        '--no-new-privs',
        '--inh-caps=-all',
        '--bounding-set=-all',
        '--',
      );
      return [this.bwrap, ...ns, ...mounts, '--', ...inner, ...spec.argv];
    }
    return [...limits, this.bwrap, ...ns, ...mounts, '--', ...spec.argv];
  }

  spawn(spec: ExecSpec): RunProcess {
    const argv = this.argvFor(spec);
    const env = { ...spec.env, TMPDIR: '/tmp' };
    const p = spawnDetached(argv, { cwd: '/', env });
    const outer = p.pid;
    let exited = false;
    void p.exited.then(() => (exited = true));
    const init = () => childrenOf(outer)[0];
    const alive = () => {
      if (!exited) return true;
      const i = init();
      return i !== undefined && isLive(i);
    };
    const signal = (sig: 'SIGTERM' | 'SIGKILL') => {
      const i = init();
      if (sig === 'SIGKILL') {
        // The namespace's init: when it dies the kernel kills every process of the namespace.
        if (i !== undefined) kill(i, 'SIGKILL');
        kill(outer, 'SIGKILL');
        return;
      }
      const ns = i !== undefined ? pidNamespace(i) : undefined;
      if (!ns) return;
      for (const pid of pidsInNamespace(ns)) if (pid !== i) kill(pid, sig);
    };
    return {
      ...p,
      exited: p.exited.then((e) => {
        const signal = e.code !== null && e.code > 128 ? SIGNALS.get(e.code - 128) : undefined;
        return signal ? { code: null, signal, at: e.at } : e;
      }),
      handle: { executor: this.name, pid: outer },
      signal,
      alive,
      liveCount: () => {
        const i = init();
        const ns = i !== undefined ? pidNamespace(i) : undefined;
        return ns ? pidsInNamespace(ns).length : exited ? 0 : 1;
      },
      waitGone: async (ms) => {
        const until = Date.now() + ms;
        await Promise.race([p.exited, sleep(ms)]);
        while (alive() && Date.now() < until) await sleep(20);
        return !alive();
      },
    };
  }

  async killOrphan(handle: ProcessHandle): Promise<void> {
    const outer = handle.pid;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${outer}/cmdline`, 'utf8').split('\0')[0] ?? '';
    } catch {
      return; // gone
    }
    if (cmd !== this.bwrap && !cmd.endsWith('/bwrap') && !cmd.endsWith('prlimit')) return; // a reused pid
    for (const c of childrenOf(outer)) kill(c, 'SIGKILL');
    kill(outer, 'SIGKILL');
    const until = Date.now() + 5_000;
    while (isLive(outer) && Date.now() < until) await sleep(20);
  }
}

/** Read-only system directories every sandbox sees. */
const SYSTEM_ROOTS = ['/usr', '/etc', '/proc', '/dev'];

function systemMounts(): { args: string[]; readable: string[] } {
  const out = ['--ro-bind', '/usr', '/usr'];
  const readable: string[] = [];
  for (const top of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    let st;
    try {
      st = lstatSync(top);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) out.push('--symlink', readlinkSync(top), top);
    else if (st.isDirectory()) out.push('--ro-bind', top, top);
  }
  out.push('--ro-bind', '/etc', '/etc');
  // DNS: /etc/resolv.conf may point outside /etc (systemd-resolved, /run/…).
  try {
    const real = realpathSync('/etc/resolv.conf');
    if (!real.startsWith('/etc/') && !real.startsWith('/usr/')) readable.push(real);
  } catch {
    /* none */
  }
  return { args: out, readable };
}
