import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
  readdirSync,
  statSync,
  existsSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { DASHBOARD_ENTRY_POINT, type AppType } from '#libs/contracts';

/** The port an app listens on inside its sandbox (its own network namespace: nothing else is there). */
export const SANDBOX_APP_PORT = 8000;

/** Where the launcher and the bridge socket live inside a run directory. */
export const APP_DIR = '.runway-app';

/**
 * The launcher every interactive run executes (python, inside the sandbox): with
 * RUNWAY_APP_SOCKET set it first opens that unix socket and forwards each connection to the app's
 * port on the sandbox's own loopback (the only way in: the sandbox has no other network), then runs
 * the app as its child, passes SIGTERM/SIGINT on and exits with the app's status (128+n for a signal).
 */
export const LAUNCHER_PY = `import os, signal, socket, subprocess, sys, threading

sock_path = os.environ.pop("RUNWAY_APP_SOCKET", None)
port = int(os.environ["PORT"])


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(conn):
    try:
        up = socket.create_connection(("127.0.0.1", port))
    except OSError:
        conn.close()
        return
    back = threading.Thread(target=pump, args=(up, conn), daemon=True)
    back.start()
    pump(conn, up)
    back.join()
    conn.close()
    up.close()


def bridge(srv):
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if sock_path:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(256)
    threading.Thread(target=bridge, args=(srv,), daemon=True).start()

child = subprocess.Popen(sys.argv[1:])


def forward(sig, _frame):
    try:
        child.send_signal(sig)
    except ProcessLookupError:
        pass


signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
code = child.wait()
sys.exit(128 - code if code < 0 else code)
`;

/** dlt's launchers of interactive jobs (dlt ≥ 1.26, `dlt/_workspace/deployment/launchers/`). */
export const DLT_LAUNCHERS = {
  marimo: 'dlt._workspace.deployment.launchers.marimo',
  dashboard: 'dlt._workspace.deployment.launchers.dashboard',
  mcp: 'dlt._workspace.deployment.launchers.mcp',
  job: 'dlt._workspace.deployment.launchers.job',
  streamlit: 'dlt._workspace.deployment.launchers.streamlit',
} as const;

/**
 * What an app started by dlt's launcher is: marimo (the `marimo` and `dashboard` launchers exec
 * marimo) or anything else; and whether it serves under the base path itself (marimo, and
 * streamlit with `--server.baseUrlPath`) or at its root (fastmcp, a job's own server: the worker
 * strips the base path).
 */
export function launcherApp(launcher: string): { type: AppType; servesBasePath: boolean } {
  if (launcher === DLT_LAUNCHERS.marimo || launcher === DLT_LAUNCHERS.dashboard)
    return { type: 'marimo', servesBasePath: true };
  return { type: 'http', servesBasePath: launcher === DLT_LAUNCHERS.streamlit };
}

/**
 * The `marimo` that dlt's marimo and dashboard launchers find on PATH (they exec `marimo …`): the
 * run's interpreter's marimo, with the base path Runway serves the app under (`--base-url`, which
 * the dashboard launcher does not pass: dlt's runtime serves every app at its own root) and the
 * host the app must listen on (`HOST`: 127.0.0.1; the launchers say 0.0.0.0).
 */
export const MARIMO_SHIM_PY = `import os, sys

args = sys.argv[1:]
base = os.environ.get("RUNWAY_BASE_PATH", "")
host = os.environ.get("HOST")
for i, a in enumerate(args):
    if a in ("run", "edit"):
        if base and "--base-url" not in args:
            args[i + 1:i + 1] = ["--base-url", base]
        break
if host and "--host" in args:
    args[args.index("--host") + 1] = host
os.execv(sys.executable, [sys.executable, "-m", "marimo", *args])
`;

/** Writes the `marimo` wrapper (run by `python`) into the run's app directory; returns its directory for PATH. */
export function writeMarimoShim(runDir: string, python: string): string {
  const dir = join(runDir, APP_DIR, 'bin');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'marimo'), `#!${python}\n${MARIMO_SHIM_PY}`, { mode: 0o700 });
  return dir;
}

/** The directory of an interpreter (its venv's `bin`: the console scripts beside it). */
export function binDirOf(python: string): string {
  return dirname(python);
}

/** A marimo notebook: imports marimo and defines a marimo.App (marimo's own file format). */
export function isMarimoFile(text: string): boolean {
  return /^\s*(import marimo|from marimo import)/m.test(text) && /marimo\.App\s*\(|\bApp\s*\(/.test(text);
}

export function appTypeOf(entryPoint: string, entryFile: string | undefined): AppType {
  if (entryPoint === DASHBOARD_ENTRY_POINT) return 'marimo';
  if (!entryFile) return 'http';
  try {
    return isMarimoFile(readFileSync(entryFile, 'utf8')) ? 'marimo' : 'http';
  } catch {
    return 'http';
  }
}

/** The command line of the app (after the launcher). */
export function appArgv(o: {
  python: string;
  type: AppType;
  /** The notebook or script, relative to the run directory (or absolute: the dashboard). */
  file: string;
  port: number;
  basePath: string;
  /** Arguments for the notebook itself (after `--`). */
  notebookArgs?: readonly string[];
}): string[] {
  if (o.type === 'http') return [o.python, o.file];
  return [
    o.python,
    '-m',
    'marimo',
    'run',
    o.file,
    '--headless',
    '--host',
    '127.0.0.1',
    '--port',
    String(o.port),
    '--base-url',
    o.basePath,
    // Runway's proxy authenticates every request: no second token in the URL.
    '--no-token',
    // Behind a proxy a stale tab must not be turned away; the run is already in a sandbox (no uv sandbox, no prompt).
    '--no-skew-protection',
    '--no-sandbox',
    ...(o.notebookArgs && o.notebookArgs.length > 0 ? ['--', ...o.notebookArgs] : []),
  ];
}

/** Writes the launcher into the run directory; returns its path. */
export function writeLauncher(runDir: string): string {
  const dir = join(runDir, APP_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'launcher.py');
  writeFileSync(file, LAUNCHER_PY, { mode: 0o600 });
  return file;
}

let dashboardFile: string | undefined;

/** dlt's pipeline dashboard (a marimo app in the installed dlt), found once per worker. */
export function dltDashboardFile(python: string): string {
  if (dashboardFile) return dashboardFile;
  const probe = spawnSync(
    python,
    [
      '-c',
      'import importlib.util as u; s = u.find_spec("dlt._workspace.helpers.dashboard.dlt_dashboard"); print(s.origin if s else "")',
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  const file = probe.status === 0 ? probe.stdout.trim() : '';
  if (!file || !existsSync(file))
    throw new Error(
      `dlt's pipeline dashboard is not installed in ${python} (dlt[workspace] and marimo are needed): ${probe.stderr.trim().slice(-500)}`,
    );
  dashboardFile = file;
  return file;
}

/**
 * The dashboard's pipelines directory: one entry per pipeline any job of the workspace ran (every
 * profile), a symlink to that job's working directory of it; where two jobs ran the same pipeline
 * name, the one changed last. `jobsDir` is `<data>/workspaces/<ws>/jobs`.
 */
export function linkWorkspacePipelines(
  jobsDir: string,
  into: string,
): { pipelines: string[]; sources: string[] } {
  mkdirSync(into, { recursive: true, mode: 0o700 });
  const best = new Map<string, { path: string; mtime: number }>();
  const sources: string[] = [];
  const list = (d: string) => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  for (const job of list(jobsDir)) {
    const data = join(jobsDir, job, 'data');
    for (const profile of list(data)) {
      const pipelinesDir = join(data, profile, 'pipelines');
      if (!existsSync(pipelinesDir)) continue;
      sources.push(join(data, profile));
      for (const name of list(pipelinesDir)) {
        const path = join(pipelinesDir, name);
        let mtime: number;
        try {
          const st = statSync(path);
          if (!st.isDirectory()) continue;
          mtime = st.mtimeMs;
          const state = join(path, 'state.json');
          if (existsSync(state)) mtime = Math.max(mtime, statSync(state).mtimeMs);
        } catch {
          continue;
        }
        const prev = best.get(name);
        if (!prev || prev.mtime < mtime) best.set(name, { path, mtime });
      }
    }
  }
  for (const [name, { path }] of best) symlinkSync(path, join(into, name));
  return { pipelines: [...best.keys()].sort(), sources };
}
