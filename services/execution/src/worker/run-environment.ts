import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { isBuiltInEntryPoint } from '#libs/contracts';
import { fileURLToPath } from 'node:url';
import type { RunExecutor } from '../executor/index.js';
import { declarationFromJson, findDeclaration, type DependencyDeclaration } from './dependencies.js';
import { installExitHook } from './pipeline-report.js';
import { dotDltOf, insideDir, type MaterializedConfig, type RunMaterializer } from './materializer.js';
import { resolveExecutable } from './process-group.js';
import type { RunRequestedEvent } from './run-requested.js';

/** Variables of the worker's environment a run's process inherits (everything else is set here). */
export const PASS_ENV = [
  'PATH',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'USER',
  'LOGNAME',
  'PYENV_ROOT',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'REQUESTS_CA_BUNDLE',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
];

/**
 * What a sandboxed process must be able to read to run the interpreter: its prefix (a virtualenv),
 * the base installation it was made from, and the directory of the real executable.
 */
export function pythonPaths(python: string): string[] {
  const probe = spawnSync(
    python,
    [
      '-c',
      'import os, sys; print(sys.prefix); print(sys.base_prefix); print(os.path.realpath(sys.executable))',
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  if (probe.status !== 0) return [python];
  const [prefix, base, exe] = probe.stdout.trim().split('\n');
  const out = new Set<string>();
  for (const p of [prefix, base, exe ? dirname(dirname(exe)) : undefined, python])
    if (p && isAbsolute(p)) out.add(p);
  return [...out];
}

/** The interpreter as an absolute path, through shims (pyenv) to the real executable when it can tell. */
export function resolvePython(cmd: string): string {
  const exe = resolveExecutable(cmd);
  if (!exe) return cmd;
  const probe = spawnSync(exe, ['-c', 'import sys; print(sys.executable)'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  const out = probe.status === 0 ? probe.stdout.trim() : '';
  return out && isAbsolute(out) && existsSync(out) ? out : exe;
}

/** The interpreters and tools of a worker, resolved once at its start. */
export interface RunTools {
  python: string;
  /** `platform.python_version()` of `python` (part of a dependency environment's key). */
  pythonVersion: string;
  uv: string | undefined;
  /** What run processes may read besides the system: the interpreter's installation, uv. */
  toolPaths: string[];
}

/** The uv that scripts/setup.mjs installs (PyPI `uv`), in the checkout's .tools/. */
const BUNDLED_UV = fileURLToPath(
  new URL('../../../../../.tools/uv/bin/uv', import.meta.url), // from dist/services/execution/src/worker
);

/** `uv`: a path (RUNWAY_UV), false = never; default: the bundled one, else uv on PATH. */
export function resolveTools(python: string, uv: string | false | undefined): RunTools {
  const resolved = resolvePython(python);
  const uvPath =
    uv === false
      ? undefined
      : uv
        ? resolveExecutable(uv)
        : existsSync(BUNDLED_UV)
          ? BUNDLED_UV
          : resolveExecutable('uv');
  const probe = spawnSync(resolved, ['-c', 'import platform; print(platform.python_version())'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return {
    python: resolved,
    pythonVersion: probe.status === 0 ? probe.stdout.trim() : 'unknown',
    uv: uvPath,
    toolPaths: [...pythonPaths(resolved), ...(uvPath ? [uvPath] : [])],
  };
}

/** A run directory ready to spawn in. */
export interface PreparedRun {
  /** The entry file in the run directory ('' for a built-in entry point such as runway:dashboard). */
  entry: string;
  config: MaterializedConfig;
  env: Record<string, string>;
  argv: string[];
  /** What the run's processes may write: the run dir, the job's dlt data, the workspace's home. */
  writable: string[];
  /** What the deployment declares to install (undefined: the configured interpreter, no setup). */
  dependencies: DependencyDeclaration | undefined;
}

/**
 * A fresh directory with the deployment's files and the profile's configuration (secrets decrypted
 * only there), and the process's environment and command line.
 */
export async function prepareRun(opts: {
  req: RunRequestedEvent;
  runDir: string;
  dataDir: string;
  tools: RunTools;
  materializer: RunMaterializer;
  executor: RunExecutor;
}): Promise<PreparedRun> {
  const { req, runDir, tools } = opts;
  const d = req.data;
  const ws = req.workspaceId;
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  // A built-in entry point (runway:dashboard) runs Runway's own app: no deployment is needed.
  const builtIn = d.kind === 'interactive' && isBuiltInEntryPoint(d.entryPoint);
  let entry = '';
  if (!builtIn) {
    if (!d.deployment) throw new Error('the run has no deployment');
    await opts.materializer.writeDeployment(runDir, ws, d.deployment);
    entry = insideDir(runDir, d.entryPoint);
    if (!existsSync(entry) || !statSync(entry).isFile()) {
      throw new Error(`entry point ${d.entryPoint} is not a file of deployment ${d.deployment.version}`);
    }
  }
  const dotDlt = dotDltOf(runDir);
  mkdirSync(dotDlt, { recursive: true, mode: 0o700 });
  const config: MaterializedConfig = d.configuration
    ? await opts.materializer.writeConfiguration(dotDlt, ws, d.configuration, d.profile)
    : {
        profile: d.profile,
        secretValues: [],
        warnings: ['no configuration uploaded: the run has no .dlt/*.toml files'],
      };
  // dlt's workspace mode (profiles) needs this marker. dlt 1.20 picks the profile from the pin
  // file `.dlt/profile-name` (it does not read WORKSPACE__PROFILE, which later versions and the
  // environment of the run still get).
  if (!existsSync(join(dotDlt, '.workspace'))) writeFileSync(join(dotDlt, '.workspace'), '');
  writeFileSync(join(dotDlt, 'profile-name'), `${config.profile}\n`);
  const wsDir = join(opts.dataDir, 'workspaces', ws);
  const jobDir = join(wsDir, 'jobs', req.jobId);
  const dataDir = join(jobDir, 'data', config.profile);
  const localDir = join(wsDir, 'local', config.profile);
  const home = join(wsDir, 'home');
  for (const dir of [dataDir, localDir, home]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const writable = [runDir, dataDir, localDir, home];
  const env: Record<string, string> = {};
  for (const k of PASS_ENV) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  Object.assign(env, {
    HOME: home,
    PYTHONUNBUFFERED: '1',
    WORKSPACE__PROFILE: config.profile,
    RUNTIME__RUN_ID: d.runId,
    DLT_DATA_DIR: dataDir,
    DLT_LOCAL_DIR: localDir,
    DLT_PROJECT_DIR: runDir,
    RUNWAY_RUN_ID: d.runId,
    RUNWAY_RUN_NUMBER: String(d.number),
    RUNWAY_JOB_ID: req.jobId,
    RUNWAY_WORKSPACE_ID: ws,
    RUNWAY_TRIGGER: d.trigger,
    // A webhook run: the JSON body posted to the hook (validated and size-capped by the gateway).
    ...(d.payload !== undefined ? { RUNWAY_WEBHOOK_PAYLOAD: d.payload } : {}),
    // The exit hook (sitecustomize): the run's Python processes report their dlt pipelines on the
    // way out, so that finalizing does not start an interpreter to read them.
    PYTHONPATH: installExitHook(runDir),
  });
  // What the deployment declares (docs/dependencies.md): installed in the `setup` phase, before the spawn.
  // A manifest job (its launch) with the client's requirements.json: that file first, as dlt's runtime
  // (its groups + the launcher's requirements); otherwise the files come first, then requirements.json.
  const job = d.launch
    ? {
        launcher: d.launch.launcher,
        ...(d.launch.dependencyGroups ? { dependencyGroups: d.launch.dependencyGroups } : {}),
      }
    : {};
  const requirementsJson = async () =>
    d.deployment && opts.materializer.deploymentRequirements
      ? opts.materializer.deploymentRequirements(ws, d.deployment)
      : undefined;
  let dependencies: DependencyDeclaration | undefined;
  // Runway's own app (runway:dashboard) runs no code of the deployment: the configured interpreter.
  if (builtIn && !d.launch) dependencies = undefined;
  else if (d.launch) {
    const json = await requirementsJson();
    dependencies = json !== undefined ? declarationFromJson(json, job) : undefined;
    dependencies ??= findDeclaration(runDir, undefined);
  } else {
    dependencies = findDeclaration(runDir, undefined);
    if (!dependencies) {
      const json = await requirementsJson();
      if (json !== undefined) dependencies = declarationFromJson(json);
    }
  }
  const argv = [tools.python, d.entryPoint];
  // The run's processes own what they may write (under the sandbox: the workspace's uid).
  opts.executor.grant(ws, writable);
  return { entry, config, env, argv, writable, dependencies };
}
