import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipelineReportSchema, type PipelineReport } from '#libs/contracts';
import { z } from 'zod';
import { runToCompletion, type RunExecutor } from '../executor/index.js';

/**
 * Run with the job's interpreter after its process ended: lists the pipelines in DLT_DATA_DIR
 * through dlt's own API (attach, last trace, schemas) and prints them as one JSON document.
 */
const HELPER = String.raw`
import json, os, sys
out = {"pipelines": [], "warnings": []}
try:
    import dlt
except Exception as e:
    out["warnings"].append("dlt is not importable: %s" % e)
    print(json.dumps(out)); sys.exit(0)
pipelines_dir = os.path.join(os.environ["DLT_DATA_DIR"], "pipelines")
names = sorted(os.listdir(pipelines_dir)) if os.path.isdir(pipelines_dir) else []
for name in names:
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
            l = trace.last_load_info
            if l:
                for lp in l.load_packages or []:
                    info["loads"].append({"loadId": str(lp.load_id), "completed": str(getattr(lp, "state", "")) == "loaded"})
        for sname in p.schema_names:
            s = p.schemas[sname]
            for t in s.data_tables():
                info["tables"].append({"schema": sname, "name": t["name"], "parent": t.get("parent"),
                    "writeDisposition": t.get("write_disposition"),
                    "columns": [{"name": c["name"], "dataType": c.get("data_type"), "nullable": bool(c.get("nullable", True))}
                                for c in t.get("columns", {}).values()]})
        out["pipelines"].append(info)
    except Exception as e:
        out["warnings"].append("pipeline %s: %s" % (name, e))
print(json.dumps(out, default=str))
`;

const reportSchema = z.object({
  pipelines: z.array(pipelineReportSchema.passthrough()),
  warnings: z.array(z.string()),
});

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
  const since = opts.since - 2_000; // clocks of node and python, rounding
  const pipelines = parsed.pipelines
    .filter((p) => p.traceStartedAt !== null && Date.parse(p.traceStartedAt) >= since)
    .slice(0, 50)
    .map((p) => pipelineReportSchema.parse(p));
  return { pipelines, warnings: parsed.warnings.slice(0, 20).map((w) => w.slice(0, 2000)) };
}

/** What a finished run's pipelines left, collected in the run's sandbox with the job's interpreter. */
export function collectRunPipelines(opts: {
  executor: RunExecutor;
  /** The worker's interpreter (used when the run has no uv environment of its own). */
  python: string;
  toolPaths: string[];
  workspaceId: string;
  runDir: string;
  prepared: { env: Record<string, string>; writable: string[] };
  /** When the run's process was spawned. */
  since: number;
}): Promise<PipelineCollection> {
  const env = opts.prepared.env;
  const venvPython = env.UV_PROJECT_ENVIRONMENT
    ? join(env.UV_PROJECT_ENVIRONMENT, 'bin', 'python')
    : undefined;
  // In the sandbox too: what the run left (pickled traces) is as untrusted as the run.
  return collectPipelines({
    executor: opts.executor,
    python: venvPython && existsSync(venvPython) ? venvPython : opts.python,
    env,
    cwd: env.DLT_DATA_DIR!,
    workspaceId: opts.workspaceId,
    writable: opts.prepared.writable.filter((p) => p !== opts.runDir),
    readable: opts.toolPaths,
    since: opts.since,
  });
}
