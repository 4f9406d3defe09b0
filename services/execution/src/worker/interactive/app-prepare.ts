import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '#libs/nats';
import { appBasePath, DASHBOARD_ENTRY_POINT, type AppType } from '#libs/contracts';
import { hasLauncher, launcherArgs, launcherTrigger, runtimeEntryPoint } from '../launcher.js';
import type { RunExecutor } from '../../executor/index.js';
import type { PreparedRun, RunTools } from '../run-environment.js';
import type { RunRequestedEvent } from '../run-requested.js';
import type { AppTarget } from './app-endpoint.js';
import {
  APP_DIR,
  appArgv,
  appTypeOf,
  binDirOf,
  DLT_LAUNCHERS,
  dltDashboardFile,
  launcherApp,
  linkWorkspacePipelines,
  SANDBOX_APP_PORT,
  writeLauncher,
  writeMarimoShim,
} from './app-launch.js';

/** The profile batch runs use by default: the dashboard reads the local destinations (duckdb) they wrote there. */
const BATCH_PROFILE = 'prod';

/** How an interactive run's app is started and reached. */
export interface AppLaunch {
  type: AppType;
  argv: string[];
  env: Record<string, string>;
  writable: string[];
  target: AppTarget;
  basePath: string;
  /** `none` under the sandbox: the app's own network namespace, reached through the bridge socket only. */
  network: 'host' | 'none';
  /** Lines for the run's log (what is served, from where). */
  notes: string[];
  /** The app's port inside its network (`run_args.port` for dlt's launchers). */
  port: number;
  /**
   * A manifest job whose app cannot be started by file (its module is not a file of the deployment,
   * or dlt's dashboard is not installed): why, for when the interpreter has no launcher either.
   */
  byFileError?: string;
  /** The app serves under `basePath` itself (unset: marimo does, a plain app serves at its root). */
  servesBasePath?: boolean;
  /** Added to the failure of an app that exited before it answered HTTP. */
  exitHint?: string;
  /** An app started by file: what useAppInterpreter needs to start it with another interpreter. */
  byFile?: { launcher: string; file: string; notebookArgs: string[] };
}

/** Turns a prepared run directory into an app launch: the launcher, the app's command, its address. */
export async function prepareApp(o: {
  req: RunRequestedEvent;
  runDir: string;
  dataDir: string;
  prepared: PreparedRun;
  tools: RunTools;
  executor: RunExecutor;
}): Promise<AppLaunch> {
  const { req, runDir, prepared, tools } = o;
  const d = req.data;
  const ws = req.workspaceId;
  const basePath = appBasePath(req.jobId);
  const sandboxed = o.executor.name === 'local-sandbox';
  const launcher = writeLauncher(runDir);
  const socketPath = join(runDir, APP_DIR, 'app.sock');
  if (sandboxed && Buffer.byteLength(socketPath) > 107)
    throw new Error(
      `the app's socket path ${socketPath} is longer than a unix socket allows (107 bytes): use a shorter RUNWAY_DATA_DIR`,
    );
  const port = sandboxed ? SANDBOX_APP_PORT : await freePort();
  // dlt's workspace dashboard job (`jobs.workspace.dashboard`, the dashboard launcher) is the same app.
  const dashboard = d.entryPoint === DASHBOARD_ENTRY_POINT || d.launch?.launcher === DLT_LAUNCHERS.dashboard;
  const type = dashboard ? 'marimo' : appTypeOf(d.entryPoint, prepared.entry || undefined);
  const env: Record<string, string> = { ...prepared.env };
  // No pipeline report is collected for an app: no exit hook.
  delete env.PYTHONPATH;
  Object.assign(env, { PORT: String(port), HOST: '127.0.0.1', RUNWAY_BASE_PATH: basePath });
  if (sandboxed) env.RUNWAY_APP_SOCKET = socketPath;
  const writable = [...prepared.writable];
  const notes: string[] = [];
  let file = d.entryPoint;
  let notebookArgs: string[] = [];
  let byFileError: string | undefined;
  if (!dashboard && !prepared.entry) byFileError = `${d.entryPoint} is not a file of the deployment`;
  if (dashboard) {
    try {
      file = dltDashboardFile(tools.python);
    } catch (err) {
      // A manifest job may still start it through dlt's dashboard launcher (applyAppLauncher).
      if (!d.launch) throw err;
      byFileError = err instanceof Error ? err.message : String(err);
    }
    const wsDir = join(o.dataDir, 'workspaces', ws);
    const linked = linkWorkspacePipelines(join(wsDir, 'jobs'), join(runDir, APP_DIR, 'pipelines'));
    const localDir = join(wsDir, 'local', BATCH_PROFILE);
    mkdirSync(localDir, { recursive: true, mode: 0o700 });
    env.DLT_LOCAL_DIR = localDir;
    writable.push(...linked.sources, localDir);
    notebookArgs = ['--pipelines-dir', join(runDir, APP_DIR, 'pipelines')];
    notes.push(
      `dlt pipeline dashboard over ${linked.pipelines.length} pipeline(s) of this workspace${linked.pipelines.length ? `: ${linked.pipelines.join(', ')}` : ''}`,
    );
  }
  const uv = tools.uv !== undefined && prepared.argv[0] === tools.uv;
  const python = uv ? 'python' : tools.python;
  const app = appArgv({ python, type, file, port, basePath, notebookArgs });
  const argv = uv ? [tools.uv!, 'run', 'python', launcher, ...app] : [tools.python, launcher, ...app];
  o.executor.grant(ws, [join(runDir, APP_DIR)]);
  if (byFileError === undefined)
    notes.push(
      `${type === 'marimo' ? 'marimo notebook' : 'HTTP app'} ${dashboard ? DASHBOARD_ENTRY_POINT : d.entryPoint}: listening on 127.0.0.1:${port}${sandboxed ? ' in its own network namespace (no other network)' : ''}, base path ${basePath}`,
    );
  return {
    type,
    argv,
    env,
    writable,
    target: sandboxed ? { socketPath } : { host: '127.0.0.1', port },
    basePath,
    network: sandboxed ? 'none' : 'host',
    notes,
    port,
    byFile: { launcher, file, notebookArgs },
    ...(byFileError !== undefined ? { byFileError } : {}),
  };
}

/**
 * An app started by file runs with the run's interpreter after its setup (a dependency environment,
 * docs/dependencies.md): its command line and PATH / VIRTUAL_ENV, like a batch run's.
 */
export function useAppInterpreter(launch: AppLaunch, python: string, runEnv: Record<string, string>): void {
  const b = launch.byFile;
  if (!b) return;
  const { type, port, basePath } = launch;
  launch.argv = [
    python,
    b.launcher,
    ...appArgv({ python, type, file: b.file, port, basePath, notebookArgs: b.notebookArgs }),
  ];
  if (runEnv.PATH !== undefined) launch.env.PATH = runEnv.PATH;
  if (runEnv.VIRTUAL_ENV !== undefined) launch.env.VIRTUAL_ENV = runEnv.VIRTUAL_ENV;
}

/** Why an `interface` cannot be served by dlt 1.26's `job` launcher unless the function serves it itself. */
function jobLauncherHint(iface: string | undefined): string {
  return `dlt's job launcher serves a FastMCP server the job function returns (interface mcp); for interface ${iface ?? '(none)'} the function must serve HTTP itself on run_context["run_args"]["port"] and not return`;
}

/**
 * A manifest job's app through dlt's launcher contract (docs/interactive.md "Interactive manifest
 * jobs"): `python -m <launcher> --run-id … --trigger … --entry-point <json>` with `run_args: {port,
 * base_path}`, run by Runway's bridge launcher in the same sandbox. \`python\` is the interpreter
 * the run ends up with (after its dependencies). Changes `launch` in place and returns the lines for
 * the run's log; a fallback reason when the interpreter has no such launcher (the app starts by
 * file, as before). Throws when neither is possible.
 */
export function applyAppLauncher(o: {
  launch: AppLaunch;
  req: RunRequestedEvent;
  runDir: string;
  python: string;
  profile: string;
  /** The run's environment after its setup (PATH, VIRTUAL_ENV of a dependency environment). */
  runEnv: Record<string, string>;
  executor: RunExecutor;
}): { notes: string[] } | { fallback: string } {
  const { launch, req } = o;
  const d = req.data;
  const l = d.launch;
  if (!l) return { notes: [] };
  if (!hasLauncher(o.python, l.launcher)) {
    const why = `the run's interpreter (${o.python}) has no launcher module ${l.launcher} (dlt 1.26 or later has it)`;
    if (launch.byFileError !== undefined) throw new Error(`${why}, and ${launch.byFileError}`);
    return { fallback: `${why}: starting ${d.entryPoint} by file` };
  }
  const trigger = launcherTrigger(req, l);
  const entryPoint = {
    ...runtimeEntryPoint(req, l, o.profile, 'interactive'),
    run_args: { port: launch.port, base_path: launch.basePath },
  };
  const launcherPy = join(o.runDir, APP_DIR, 'launcher.py');
  const shimDir = writeMarimoShim(o.runDir, o.python);
  // The app directory was granted already (a granted tree is not walked again): grant the new one.
  o.executor.grant(req.workspaceId, [shimDir]);
  const app = launcherApp(l.launcher);
  launch.type = app.type;
  launch.servesBasePath = app.servesBasePath;
  launch.argv = [o.python, launcherPy, o.python, ...launcherArgs(req, l, trigger, entryPoint)];
  const path = o.runEnv.PATH ?? launch.env.PATH ?? '/usr/bin:/bin';
  Object.assign(launch.env, {
    // dlt's marimo and dashboard launchers exec `marimo`: Runway's wrapper, then the interpreter's scripts.
    PATH: `${shimDir}:${binDirOf(o.python)}:${path}`,
    RUNTIME__RUN_ID: d.runId,
    RUNTIME__JOB_REF: l.jobRef,
    RUNTIME__TRIGGER: trigger,
    RUNTIME__WORKSPACE_ID: req.workspaceId,
  });
  if (o.runEnv.VIRTUAL_ENV !== undefined) launch.env.VIRTUAL_ENV = o.runEnv.VIRTUAL_ENV;
  if (l.launcher === DLT_LAUNCHERS.dashboard) {
    // dlt's dashboard reads the pipelines of its data directory: the workspace's, linked by prepareApp.
    launch.env.DLT_DATA_DIR = join(o.runDir, APP_DIR);
  }
  if (l.launcher === DLT_LAUNCHERS.job) launch.exitHint = jobLauncherHint(d.interface);
  const what = launch.type === 'marimo' ? 'marimo app' : d.interface === 'mcp' ? 'MCP server' : 'HTTP app';
  const notes = [
    `launcher ${l.launcher} for ${l.jobRef} (trigger ${trigger}, interface ${d.interface ?? 'none'}): ${what} on port ${launch.port}, base path ${launch.basePath}${app.servesBasePath ? '' : ' (stripped before the app)'}`,
  ];
  return { notes };
}
