import { z } from 'zod';

/**
 * The one source of every closed list of words that crosses a service boundary: events, RPC
 * payloads, read models, the REST mappers and the CLI take them from here (`<schema>.options` is
 * the list itself).
 */

/** `batch` = a script run to completion; `interactive` = a notebook / app served until stopped. */
export const jobKindSchema = z.enum(['batch', 'interactive']);
export type JobKind = z.infer<typeof jobKindSchema>;

/**
 * Why a run exists. The compatible API only knows manual and schedule (api and wake are shown as
 * manual there). `wake`: a visit to the URL of an interactive job whose app was not running.
 */
export const runTriggerSchema = z.enum(['manual', 'api', 'schedule', 'wake', 'webhook']);
export type RunTrigger = z.infer<typeof runTriggerSchema>;

/** What the scheduler does with fire times missed while it was down. */
export const missedPolicySchema = z.enum(['run_once', 'skip', 'run_all']);
export type MissedPolicy = z.infer<typeof missedPolicySchema>;

/**
 * A scheduled fire while a run of the job is still active: `skip` (recorded as a skipped run),
 * `queue` (at most one fire waits for the active run to end) or `allow`.
 */
export const overlapPolicySchema = z.enum(['skip', 'queue', 'allow']);
export type OverlapPolicy = z.infer<typeof overlapPolicySchema>;

/** The statuses of the compatible API, in lifecycle order. */
export const runStatusSchema = z.enum([
  'pending',
  'starting',
  'running',
  'finalizing',
  'completed',
  'failed',
  'cancelling',
  'cancelled',
  'skipped',
]);
export type RunStatus = z.infer<typeof runStatusSchema>;
export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled', 'skipped'];

/** Why a run failed. */
export const runFailureReasonSchema = z.enum([
  'exit_code',
  'signal',
  'timeout',
  'worker_lost',
  'setup_error',
  'spawn_error',
  /** Interactive runs: the app exited before it answered HTTP, or did not answer within the startup timeout. */
  'app_startup',
  /** Interactive runs: a limit (apps per workspace or per worker) refused the app; the message names it. */
  'limit',
]);
export type RunFailureReason = z.infer<typeof runFailureReasonSchema>;

/** How a completed run ended: its process exited by itself, or its interactive app was stopped for being idle. */
export const runEndReasonSchema = z.enum(['exited', 'idle']);
export type RunEndReason = z.infer<typeof runEndReasonSchema>;

/** What an interactive run serves: a marimo notebook (run by marimo) or a plain Python HTTP app (on `PORT`). */
export const appTypeSchema = z.enum(['marimo', 'http']);
export type AppType = z.infer<typeof appTypeSchema>;

/** Who sealed a run's log: its worker at the end of the run, or the logs service for a run whose worker could not. */
export const sealedBySchema = z.enum(['worker', 'logs']);
export type SealedBy = z.infer<typeof sealedBySchema>;

/** How a deployment version came: one uploaded archive, or an incremental sync of changed files. */
export const deploymentSourceSchema = z.enum(['archive', 'sync']);
export type DeploymentSource = z.infer<typeof deploymentSourceSchema>;

/** What one entry of a deployment's file list is. */
export const deploymentFileTypeSchema = z.enum(['file', 'symlink']);
export type DeploymentFileType = z.infer<typeof deploymentFileTypeSchema>;

/** What one file of a configuration version holds (`config.toml` or `secrets.toml` style). */
export const configurationFileKindSchema = z.enum(['config', 'secrets']);
export type ConfigurationFileKind = z.infer<typeof configurationFileKindSchema>;

/** A member's role in a workspace. */
export const roleSchema = z.enum(['owner', 'member', 'viewer']);
export type Role = z.infer<typeof roleSchema>;
