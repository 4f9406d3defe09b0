import { spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { MAX_RUN_RESULT_CHARS, type RunResult } from '../run/run.events.js';
import type { RunRequestedEvent } from './run-requested.js';

/**
 * dlt's launcher contract (dlt ≥ 1.26, `dlt/_workspace/deployment/launchers/_launcher.py`):
 * `python -m <launcher> --run-id <id> --trigger <trigger> --entry-point <json TRuntimeEntryPoint>`.
 * The entry point is the job definition's `entry_point` (module, function, job_type, launcher) plus
 * what the runtime adds (`build_runtime_entry_point` in dlt's `_run_command.py`): the interval
 * (ISO UTC) and its time zone, `allow_external_schedulers`, the profile, `refresh`. docs/manifest.md.
 */
export interface LauncherCommand {
  argv: string[];
  env: Record<string, string>;
}

/** Where each interpreter keeps its packages (`purelib`, `platlib`), read once per interpreter. */
const sitePackages = new Map<string, string[]>();

/**
 * The interpreter's package directories, read without importing anything of them (`-I -S`: no
 * site, no .pth file runs; a dependency environment holds the workspace's own packages). Without
 * `site` a virtualenv's prefix is not applied (Python ≤ 3.11), so its `pyvenv.cfg` beside `bin/`
 * adds `<venv>/lib/pythonX.Y/site-packages`.
 */
function packageDirsOf(python: string): string[] {
  const known = sitePackages.get(python);
  if (known) return known;
  const probe = spawnSync(
    python,
    [
      '-I',
      '-S',
      '-c',
      'import sys, sysconfig; p = sysconfig.get_paths(); print("%d.%d" % sys.version_info[:2]); print(p["purelib"]); print(p["platlib"])',
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  const [version, ...dirs] = probe.status === 0 ? probe.stdout.trim().split('\n').filter(Boolean) : [];
  const venv = dirname(dirname(python));
  if (version && existsSync(join(venv, 'pyvenv.cfg')))
    dirs.unshift(join(venv, 'lib', `python${version}`, 'site-packages'));
  const out = [...new Set(dirs)];
  sitePackages.set(python, out);
  return out;
}

/** Whether `python` has the launcher module installed (dlt 1.20 has no `launchers` package). */
export function hasLauncher(python: string, launcher: string): boolean {
  const rel = launcher.split('.');
  if (rel.some((part) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(part))) return false;
  return packageDirsOf(python).some(
    (dir) => existsSync(join(dir, ...rel) + '.py') || existsSync(join(dir, ...rel, '__init__.py')),
  );
}

/**
 * The launcher's command line and the RUNTIME__* variables for a run of a manifest batch job, or a
 * reason to run the module file as a script (the interpreter has no such launcher).
 */
export function launcherCommand(
  python: string,
  req: RunRequestedEvent,
  profile: string,
): LauncherCommand | { fallback: string } {
  const d = req.data;
  const l = d.launch;
  if (!l) return { fallback: 'the job has no launcher' };
  if (!hasLauncher(python, l.launcher))
    return {
      fallback: `the run's interpreter (${python}) has no launcher module ${l.launcher} (dlt 1.26 or later has it): running ${d.entryPoint} as a script`,
    };
  const trigger = launcherTrigger(req, l);
  return {
    argv: [python, ...launcherArgs(req, l, trigger, runtimeEntryPoint(req, l, profile, 'batch'))],
    env: {
      RUNTIME__RUN_ID: d.runId,
      RUNTIME__JOB_REF: l.jobRef,
      RUNTIME__TRIGGER: trigger,
      RUNTIME__WORKSPACE_ID: req.workspaceId,
    },
  };
}

type Launch = NonNullable<RunRequestedEvent['data']['launch']>;

/** The trigger a launcher is told: the run's trigger string, else `manual:<job ref>`. */
export function launcherTrigger(req: RunRequestedEvent, l: Launch): string {
  return req.data.triggerSource ?? `manual:${l.jobRef}`;
}

/**
 * TRuntimeEntryPoint as dlt's `build_runtime_entry_point` builds it from the job definition's
 * `entry_point` (with its `config`, copied as is) and the run: batch and interactive runs alike.
 */
export function runtimeEntryPoint(
  req: RunRequestedEvent,
  l: Launch,
  profile: string,
  jobType: 'batch' | 'interactive',
): Record<string, unknown> {
  const d = req.data;
  return {
    module: l.module,
    function: l.function,
    job_type: jobType,
    launcher: l.launcher,
    job_ref: l.jobRef,
    interval_timezone: l.timezone,
    allow_external_schedulers: l.externalSchedulers,
    profile,
    refresh: d.refresh ?? false,
    ...(l.config !== undefined ? { config: l.config } : {}),
    ...(d.interval ? { interval_start: d.interval.start, interval_end: d.interval.end } : {}),
  };
}

/** `-m <launcher> --run-id <id> --trigger <trigger> --entry-point <json>`, after the interpreter. */
export function launcherArgs(
  req: RunRequestedEvent,
  l: Launch,
  trigger: string,
  entryPoint: Record<string, unknown>,
): string[] {
  return [
    '-m',
    l.launcher,
    '--run-id',
    req.data.runId,
    '--trigger',
    trigger,
    '--entry-point',
    JSON.stringify(entryPoint),
  ];
}

/** What the exit hook writes when dlt's job launcher returned a value (pipeline-report.ts). */
export const RESULT_FILE = 'result.json';
const resultFileSchema = z.object({
  type: z.string().min(1).max(200),
  /** Python cuts at 65,536 code points: up to twice as many UTF-16 units here, cut again below. */
  json: z.string().max(2 * MAX_RUN_RESULT_CHARS),
  truncated: z.boolean(),
  bytes: z.number().int().nonnegative(),
});
/** The result file at most this large (bytes): 4 bytes per character and the JSON around it. */
const MAX_RESULT_FILE_BYTES = 8 * MAX_RUN_RESULT_CHARS + 4096;

/**
 * Reads the job result the run's exit hook left in `dir` (after the run's processes are gone).
 * Untrusted: a regular file only (no symlink, FIFO or device), size-capped, validated; the text is
 * masked with `mask` (the run's known secrets) and each secret's JSON-escaped form. Undefined: no
 * result, or a refused one (`refused` says why, without its content).
 */
export function readRunResult(
  dir: string,
  jobRef: string,
  mask: (text: string) => string,
  secretValues: readonly string[],
  refused: (why: string) => void,
): RunResult | undefined {
  let fd: number | undefined;
  try {
    try {
      fd = openSync(join(dir, RESULT_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = err instanceof Error && 'code' in err ? err.code : undefined;
      if (code !== 'ENOENT') refused('the job result is not a regular file');
      return undefined;
    }
    const st = fstatSync(fd);
    if (!st.isFile()) return void refused('the job result is not a regular file');
    if (st.size > MAX_RESULT_FILE_BYTES)
      return void refused(`the job result file is over ${MAX_RESULT_FILE_BYTES} bytes`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(buf.subarray(0, off).toString('utf8'));
    } catch {
      return void refused('the job result is not JSON');
    }
    const parsed = resultFileSchema.safeParse(raw);
    if (!parsed.success) return void refused('the job result does not have the expected shape');
    let text = mask(parsed.data.json);
    for (const s of secretValues) {
      const escaped = JSON.stringify(s).slice(1, -1);
      if (escaped.length >= 4 && text.includes(escaped)) text = text.split(escaped).join('***');
    }
    return {
      jobRef,
      type: parsed.data.type,
      value: text.slice(0, MAX_RUN_RESULT_CHARS),
      truncated: parsed.data.truncated || text.length > MAX_RUN_RESULT_CHARS,
      bytes: parsed.data.bytes,
    };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
