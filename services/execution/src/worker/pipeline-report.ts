import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pipelineReportSchema, type PipelineReport } from '#libs/contracts';
import { z } from 'zod';
import { runToCompletion, type RunExecutor } from '../executor/index.js';

/**
 * Python: `runway_collect(pipelines_dir, since)` lists the pipelines in a dlt pipelines directory
 * through dlt's own API (attach, last trace, schemas). `since` (seconds since the epoch, or None)
 * skips the pipelines whose files did not change since then. Shared by the exit hook and the
 * collector below, so that both report the same content.
 */
const COLLECT = String.raw`
def runway_collect(pipelines_dir, since):
    import os
    import dlt
    out = {"pipelines": [], "warnings": []}
    names = sorted(os.listdir(pipelines_dir)) if os.path.isdir(pipelines_dir) else []
    for name in names:
        if since is not None:
            touched = False
            for f in ("trace.pickle", "state.json"):
                try:
                    touched = touched or os.stat(os.path.join(pipelines_dir, name, f)).st_mtime >= since
                except OSError:
                    pass
            if not touched:
                continue
        try:
            p = dlt.attach(pipeline_name=name, pipelines_dir=pipelines_dir)
            trace = p.last_trace
            info = {"name": name, "destination": None, "datasetName": p.dataset_name, "schemaNames": list(p.schema_names),
                    "traceStartedAt": trace.started_at.isoformat() if trace else None, "rowCounts": {}, "loads": [], "tables": []}
            try:
                info["destination"] = p.destination.destination_name if p.destination else None
            except Exception:
                pass
            if trace:
                n = trace.last_normalize_info
                if n:
                    info["rowCounts"] = {k: int(v) for k, v in dict(n.row_counts).items()}
                if trace.finished_at:
                    info["durationMs"] = int((trace.finished_at - trace.started_at).total_seconds() * 1000)
                for st in trace.steps or []:
                    if st.step == "load" and st.finished_at:
                        info["loadDurationMs"] = int((st.finished_at - st.started_at).total_seconds() * 1000)
                l = trace.last_load_info
                if l:
                    for lp in l.load_packages or []:
                        info["loads"].append({"loadId": str(lp.load_id), "completed": str(getattr(lp, "state", "")) == "loaded"})
            for sname in p.schema_names:
                s = p.schemas[sname]
                for t in s.data_tables():
                    info["tables"].append({"schema": sname, "name": t["name"], "parent": t.get("parent"),
                        "resource": t.get("resource"), "writeDisposition": t.get("write_disposition"),
                        "columns": [{"name": c["name"], "dataType": c.get("data_type"), "nullable": bool(c.get("nullable", True))}
                                    for c in t.get("columns", {}).values()]})
            out["pipelines"].append(info)
        except Exception as e:
            out["warnings"].append("pipeline %s: %s" % (name, e))
    return out
`;

/**
 * The collector (the fallback when a run left no report: killed, `os._exit`): run with the job's
 * interpreter after its process ended, prints the pipelines as one JSON document.
 */
const HELPER = String.raw`
import json, os, sys
${COLLECT}
try:
    import dlt
except Exception as e:
    print(json.dumps({"pipelines": [], "warnings": ["dlt is not importable: %s" % e]})); sys.exit(0)
print(json.dumps(runway_collect(os.path.join(os.environ["DLT_DATA_DIR"], "pipelines"), None), default=str))
`;

/**
 * The exit hook: `sitecustomize.py` in a directory on the run's PYTHONPATH. Every Python process of
 * the run imports it; one that imported dlt writes, on its way out (atexit, after the user's code
 * and dlt's own exit handlers), the pipelines it touched to `report-<pid>.json` in that directory.
 * It runs inside the run's sandbox with the run's interpreter; the worker only reads the JSON (and
 * trusts nothing in it). A `sitecustomize` it shadows (a distribution's, a virtualenv's) still runs.
 */
const EXIT_HOOK = String.raw`# Written by Runway: reports the run's dlt pipelines when the process exits.
import atexit as _runway_atexit, os as _runway_os, time as _runway_time
_runway_dir = _runway_os.path.dirname(_runway_os.path.abspath(__file__))
_runway_since = _runway_time.time() - 2
_runway_data = _runway_os.environ.get("DLT_DATA_DIR")
${COLLECT}
def _runway_report():
    import sys
    if "dlt" not in sys.modules or not _runway_data:
        return
    import json, os
    try:
        out = runway_collect(os.path.join(_runway_data, "pipelines"), _runway_since)
    except BaseException as e:
        out = {"pipelines": [], "warnings": ["could not read the pipelines: %s" % e]}
    try:
        path = os.path.join(_runway_dir, "report-%d.json" % os.getpid())
        with open(path + ".tmp", "w") as f:
            json.dump(out, f, default=str)
        os.replace(path + ".tmp", path)
    except Exception:
        pass
_runway_atexit.register(_runway_report)
def _runway_result():
    # dlt's job launcher run as the main module (python -m ...launchers.job) keeps what the job's
    # function returned in its global "result" (it prints it): written as JSON for the worker.
    import sys
    m = sys.modules.get("__main__")
    if getattr(getattr(m, "__spec__", None), "name", None) != "dlt._workspace.deployment.launchers.job":
        return
    g = vars(m)
    if g.get("result") is None:
        return
    import json, os
    value = g["result"]
    try:
        text = json.dumps(value, default=str)
    except Exception:
        text = json.dumps(repr(value))
    out = {"type": type(value).__name__[:200], "json": text[:65536], "truncated": len(text) > 65536,
           "bytes": len(text.encode("utf-8", "replace"))}
    try:
        path = os.path.join(_runway_dir, "result.json")
        with open(path + ".tmp", "w") as f:
            json.dump(out, f)
        os.replace(path + ".tmp", path)
    except Exception:
        pass
_runway_atexit.register(_runway_result)
def _runway_chain():
    import sys
    rest = [p for p in sys.path if _runway_os.path.abspath(p or ".") != _runway_dir]
    # Only a directory can hold another sitecustomize; importlib is imported only when one does.
    if not any(_runway_os.path.exists(_runway_os.path.join(p or ".", n)) for p in rest
               for n in ("sitecustomize.py", "sitecustomize")):
        return
    import importlib.machinery, importlib.util
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
try:
    _runway_chain()
except Exception:
    pass
`;

/** The directory of a run's exit hook and its reports, inside the run's directory. */
export function exitHookDirOf(runDir: string): string {
  return join(runDir, '.runway-exit');
}

/** Writes the exit hook into the run's directory (before it is handed to the run): PYTHONPATH points there. */
export function installExitHook(runDir: string): string {
  const dir = exitHookDirOf(runDir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'sitecustomize.py'), EXIT_HOOK, { mode: 0o600 });
  return dir;
}

const reportSchema = z.object({
  pipelines: z.array(pipelineReportSchema.passthrough()).max(1000),
  warnings: z.array(z.string()).max(1000),
});
type Report = z.infer<typeof reportSchema>;

/** What the exit hooks of a run's processes left: their reports, or why they were refused. */
export interface RunReports {
  reports: Report[];
  refused: string[];
}

const REPORT_FILE = /^report-\d{1,10}\.json$/;
/** At most this many report files (Python processes of the run that used dlt) are read. */
const MAX_REPORTS = 16;
/** Each report at most this large (bytes); larger ones are refused unread. */
export const MAX_REPORT_BYTES = 4 * 1024 * 1024;
/** All reports of a run together at most this large (bytes): the rest are refused unread. */
const MAX_TOTAL_BYTES = 16 * 1024 * 1024;

/**
 * Reads the reports the run's exit hooks wrote (after the run's processes are gone). Untrusted
 * data: only regular files (no symlinks, FIFOs or devices), size-capped, JSON validated with zod;
 * nothing in them is executed. A refused report's content never reaches a message. Undefined
 * when the run left no report at all (its processes never got to their exit hooks).
 */
export function readRunReports(dir: string, maxBytes = MAX_REPORT_BYTES): RunReports | undefined {
  try {
    if (!lstatSync(dir).isDirectory()) return { reports: [], refused: ['the report directory was replaced'] };
  } catch {
    return undefined;
  }
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => REPORT_FILE.test(n));
  } catch {
    return undefined;
  }
  if (names.length === 0) return undefined;
  const out: RunReports = { reports: [], refused: [] };
  let total = 0;
  if (names.length > MAX_REPORTS)
    out.refused.push(`${names.length - MAX_REPORTS} report(s) past ${MAX_REPORTS} ignored`);
  for (const name of names.sort().slice(0, MAX_REPORTS)) {
    let fd: number | undefined;
    try {
      fd = openSync(join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const st = fstatSync(fd);
      if (!st.isFile()) {
        out.refused.push(`${name} is not a regular file`);
        continue;
      }
      if (st.size > maxBytes) {
        out.refused.push(`${name} is larger than ${maxBytes} bytes`);
        continue;
      }
      if ((total += st.size) > MAX_TOTAL_BYTES) {
        out.refused.push(`${name} is past ${MAX_TOTAL_BYTES} bytes of reports`);
        continue;
      }
      const buf = Buffer.alloc(st.size);
      let read = 0;
      while (read < st.size) {
        const n = readSync(fd, buf, read, st.size - read, read);
        if (n === 0) break;
        read += n;
      }
      let json: unknown;
      try {
        json = JSON.parse(buf.subarray(0, read).toString('utf8'));
      } catch {
        out.refused.push(`${name} is not JSON`);
        continue;
      }
      const parsed = reportSchema.safeParse(json);
      if (!parsed.success) {
        const paths = parsed.error.issues.slice(0, 3).map((i) => i.path.join('.') || '(root)');
        out.refused.push(`${name} does not match the report's schema (at ${paths.join(', ')})`);
        continue;
      }
      out.reports.push(parsed.data);
    } catch (err) {
      out.refused.push(
        `${name} could not be read (${err instanceof Error && 'code' in err ? String(err.code) : 'error'})`,
      );
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  return out;
}

/** Only the pipelines this run ran (their last trace started after `since`), capped as the event. */
function thisRunsPipelines(report: Report, since: number): PipelineCollection {
  const after = since - 2_000; // clocks of node and python, rounding
  const pipelines = report.pipelines
    .filter((p) => p.traceStartedAt !== null && Date.parse(p.traceStartedAt) >= after)
    .slice(0, 50)
    .map((p) => pipelineReportSchema.parse(p));
  return { pipelines, warnings: report.warnings.slice(0, 20).map((w) => w.slice(0, 2000)) };
}

/** One report from the reports of several processes: per pipeline name, the latest trace. */
export function mergeReports(r: RunReports, since: number): PipelineCollection {
  const byName = new Map<string, Report['pipelines'][number]>();
  for (const report of r.reports)
    for (const p of report.pipelines) {
      const seen = byName.get(p.name);
      if (!seen || Date.parse(p.traceStartedAt ?? '') > Date.parse(seen.traceStartedAt ?? ''))
        byName.set(p.name, p);
    }
  const pipelines = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const warnings = [
    ...r.refused.map((w) => `the run's pipeline report was refused: ${w}`),
    ...r.reports.flatMap((x) => x.warnings),
  ];
  return thisRunsPipelines({ pipelines, warnings }, since);
}

function touchedSince(pipelinesDir: string, since: number): boolean {
  let names: string[];
  try {
    names = readdirSync(pipelinesDir);
  } catch {
    return false;
  }
  for (const name of names) {
    for (const f of ['trace.pickle', 'state.json']) {
      try {
        if (statSync(join(pipelinesDir, name, f)).mtimeMs >= since) return true;
      } catch {
        /* not there */
      }
    }
  }
  return false;
}

export interface PipelineCollection {
  pipelines: PipelineReport[];
  warnings: string[];
}

/**
 * What the run's pipelines left: only pipelines whose last trace started after `since` (the ones
 * this run ran). Never throws: problems become warnings.
 */
export async function collectPipelines(opts: {
  /** The collector runs where the run ran: it unpickles what the run left. */
  executor: RunExecutor;
  python: string;
  env: Record<string, string>;
  cwd: string;
  workspaceId: string;
  writable: string[];
  readable: string[];
  since: number;
  timeoutMs?: number;
}): Promise<PipelineCollection> {
  const dir = opts.env.DLT_DATA_DIR ? join(opts.env.DLT_DATA_DIR, 'pipelines') : undefined;
  // Only start Python (importing dlt takes a while) when a pipeline's files changed during the run.
  if (!dir || !touchedSince(dir, opts.since - 2_000)) return { pipelines: [], warnings: [] };
  const r = await runToCompletion(
    opts.executor,
    {
      argv: [opts.python, '-I', '-c', HELPER],
      cwd: opts.cwd,
      env: { ...opts.env, RUNTIME__DLTHUB_TELEMETRY: 'false' },
      workspaceId: opts.workspaceId,
      writable: opts.writable,
      readable: opts.readable,
    },
    opts.timeoutMs ?? 60_000,
  );
  const { stdout, code } = r;
  const error = r.error ?? (code === 0 ? undefined : r.stderrTail.trim().split('\n').at(-1));
  if (code !== 0)
    return {
      pipelines: [],
      warnings: [`could not read the pipelines: ${error ?? `exit ${code}`}`.slice(0, 2000)],
    };
  const line = stdout.trim().split('\n').at(-1) ?? '';
  let parsed: z.infer<typeof reportSchema>;
  try {
    parsed = reportSchema.parse(JSON.parse(line));
  } catch (err) {
    return {
      pipelines: [],
      warnings: [
        `could not read the pipelines: ${err instanceof Error ? err.message : String(err)}`.slice(0, 2000),
      ],
    };
  }
  return thisRunsPipelines(parsed, opts.since);
}

/**
 * What a finished run's pipelines left: what its exit hooks reported, or (when none got to report:
 * the process was killed) collected in the run's sandbox with the job's interpreter.
 */
export function collectRunPipelines(opts: {
  /** What the run's exit hooks left (`readRunReports`, read before the run's directory went). */
  reports: RunReports | undefined;
  executor: RunExecutor;
  /** The worker's interpreter (used when the run has no dependency environment of its own). */
  python: string;
  toolPaths: string[];
  workspaceId: string;
  runDir: string;
  prepared: { env: Record<string, string>; writable: string[] };
  /** When the run's process was spawned. */
  since: number;
}): Promise<PipelineCollection> {
  if (opts.reports) return Promise.resolve(mergeReports(opts.reports, opts.since));
  const env = opts.prepared.env;
  // The deployment's own environment (docs/dependencies.md), read-only like during the run.
  const venv = env.VIRTUAL_ENV;
  const venvPython = venv ? join(venv, 'bin', 'python') : undefined;
  // In the sandbox too: what the run left (pickled traces) is as untrusted as the run.
  return collectPipelines({
    executor: opts.executor,
    python: venvPython && existsSync(venvPython) ? venvPython : opts.python,
    env,
    cwd: env.DLT_DATA_DIR!,
    workspaceId: opts.workspaceId,
    writable: opts.prepared.writable.filter((p) => p !== opts.runDir),
    readable: venv ? [...opts.toolPaths, venv] : opts.toolPaths,
    since: opts.since,
  });
}
