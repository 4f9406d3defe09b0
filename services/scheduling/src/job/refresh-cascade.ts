import type { JobManifest } from '#libs/contracts';

/**
 * dlt's refresh cascade (`get_refresh_cascade_targets`, dlt/_workspace/deployment/freshness.py of
 * dlt 1.26.0): the jobs a refresh started at `root` reaches, breadth first along freshness edges
 * (a downstream names its upstream in `freshness`). The root is excluded; a `block` job is
 * neither refreshed nor recursed into; an interval job that allows external schedulers (its own
 * watermark) is left out too.
 */
export function refreshCascadeTargets(root: string, jobs: readonly JobManifest[]): string[] {
  const byRef = new Map(jobs.map((j) => [j.jobRef, j]));
  const direct = (up: string) => jobs.filter((j) => j.jobRef !== up && j.freshness.includes(up));
  const seen = new Set([root]);
  const out: string[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const cur = queue.shift()!;
    for (const ds of direct(cur)) {
      if (seen.has(ds.jobRef) || !byRef.has(ds.jobRef)) continue;
      if (ds.refreshPropagation === 'block') continue;
      if (ds.interval !== null && ds.externalSchedulers) continue;
      seen.add(ds.jobRef);
      out.push(ds.jobRef);
      queue.push(ds.jobRef);
    }
  }
  return out;
}
