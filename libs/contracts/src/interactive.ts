/**
 * Interactive jobs (docs/interactive.md). A job's entry point is a file of the deployment, or one of
 * these built-in entry points: they need no deployment and exist only for `kind: 'interactive'`.
 */

/** dlt's own pipeline dashboard (a marimo app shipped with dlt) over the workspace's pipelines. */
export const DASHBOARD_ENTRY_POINT = 'runway:dashboard';

/** The interactive job every workspace has (what `dlt runtime dashboard` opens). */
export const DASHBOARD_JOB_NAME = 'dashboard';

export const BUILT_IN_ENTRY_POINTS: readonly string[] = [DASHBOARD_ENTRY_POINT];

export function isBuiltInEntryPoint(entryPoint: string): boolean {
  return BUILT_IN_ENTRY_POINTS.includes(entryPoint);
}

/** The header every request to an app's worker endpoint carries (its value: interactiveAppKey in libs/secrets). */
export const APP_KEY_HEADER = 'x-runway-app-key';

/** The path prefix an interactive run's app is served under at its worker endpoint. */
export function appBasePath(jobId: string): string {
  return `/i/${jobId}`;
}
