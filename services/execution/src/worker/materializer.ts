import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { VersionRef } from '#libs/contracts';

export interface MaterializedConfig {
  /** Value for WORKSPACE__PROFILE (after the fallback rules: access → prod → default files). */
  profile: string;
  /** Secret values written, longest first: masked in the run's output. */
  secretValues: string[];
  warnings: string[];
}

/**
 * Writes what a run needs into its fresh directory. Implemented on top of the deployments service
 * (code files of a deployment version) and the configurations service (`.dlt` files of a
 * configuration version for one profile, secrets decrypted only here).
 */
export interface RunMaterializer {
  writeDeployment(dir: string, workspaceId: string, deployment: VersionRef): Promise<void>;
  /** Writes into `dotDlt` (the run's `.dlt/`): secrets files with mode 0600. */
  writeConfiguration(
    dotDlt: string,
    workspaceId: string,
    configuration: VersionRef,
    profile: string,
  ): Promise<MaterializedConfig>;
  /**
   * The `requirements.json` the client uploaded with the deployment version, if any
   * (docs/dependencies.md); absent = this materializer knows none.
   */
  deploymentRequirements?(workspaceId: string, deployment: VersionRef): Promise<string | undefined>;
}

/** Resolves a relative POSIX path inside `root`; throws if it would leave it. */
export function insideDir(root: string, rel: string): string {
  const p = resolve(root, rel);
  const r = relative(root, p);
  if (r === '' || r.startsWith('..') || resolve(root, r) !== p)
    throw new Error(`path ${JSON.stringify(rel)} leaves its directory`);
  return p;
}

/** Writes one file below `root`, creating its folders; `mode` is applied even over an umask. */
export function writeFileInside(
  root: string,
  rel: string,
  content: Uint8Array | string,
  mode = 0o644,
): string {
  const p = insideDir(root, rel);
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  writeFileSync(p, content, { mode });
  chmodSync(p, mode);
  return p;
}

export function dotDltOf(runDir: string): string {
  return join(runDir, '.dlt');
}
