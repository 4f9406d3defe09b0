import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { appBasePath, DASHBOARD_ENTRY_POINT, type AppType } from '#libs/contracts';
import type { RunExecutor } from '../../executor/index.js';
import type { PreparedRun, RunTools } from '../run-environment.js';
import type { RunRequestedEvent } from '../run-requested.js';
import type { AppTarget } from './app-endpoint.js';
import {
  APP_DIR,
  appArgv,
  appTypeOf,
  dltDashboardFile,
  linkWorkspacePipelines,
  SANDBOX_APP_PORT,
  writeLauncher,
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
}

/** A loopback port nobody listens on now (RUNWAY_SANDBOX=off: apps share the host's network). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = a !== null && typeof a === 'object' ? a.port : 0;
      s.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
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
  const dashboard = d.entryPoint === DASHBOARD_ENTRY_POINT;
  const type = appTypeOf(d.entryPoint, dashboard ? undefined : prepared.entry);
  const env: Record<string, string> = { ...prepared.env };
  // No pipeline report is collected for an app: no exit hook.
  delete env.PYTHONPATH;
  Object.assign(env, { PORT: String(port), HOST: '127.0.0.1', RUNWAY_BASE_PATH: basePath });
  if (sandboxed) env.RUNWAY_APP_SOCKET = socketPath;
  const writable = [...prepared.writable];
  const notes: string[] = [];
  let file = d.entryPoint;
  let notebookArgs: string[] = [];
  if (dashboard) {
    file = dltDashboardFile(tools.python);
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
  };
}
