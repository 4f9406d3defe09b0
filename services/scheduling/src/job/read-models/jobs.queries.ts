import { sql, type Kysely } from 'kysely';
import { jobManifestSchema, type JobManifest } from '#libs/contracts';
import type { JobRow, JobVersionRow, SchedulingTables } from '../../migrations/index.js';

/** The jobs read models as other services (the gateway) read them: rows and typed queries, no migrations. */
export type { JobRow, JobVersionRow } from '../../migrations/index.js';
export type JobsReadModel = Pick<SchedulingTables, 'jobs' | 'job_versions'>;
type Db = Kysely<JobsReadModel>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID.test(s);

/** A job by id (a UUID) or else by name; names may hold '/' and '.'. */
export async function jobByIdOrName(db: Db, ws: string, idOrName: string): Promise<JobRow | undefined> {
  if (isUuid(idOrName)) {
    const byId = await db
      .selectFrom('jobs')
      .selectAll()
      .where('workspace_id', '=', ws)
      .where('id', '=', idOrName.toLowerCase())
      .executeTakeFirst();
    if (byId) return byId;
  }
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('workspace_id', '=', ws)
    .where('name', '=', idOrName)
    .executeTakeFirst();
}

/** A deleted job (its runs stay) as its last version: inactive, unscheduled. */
function asDeletedJob(v: JobVersionRow): JobRow {
  return {
    id: v.job_id,
    workspace_id: v.workspace_id,
    name: v.name,
    description: v.description,
    entry_point: v.entry_point,
    kind: v.kind,
    profile: v.profile,
    schedule: null,
    active: false,
    timeout_seconds: v.timeout_seconds,
    timezone: v.timezone,
    missed_policy: v.missed_policy,
    overlap_policy: v.overlap_policy,
    job_ref: null,
    triggers: [],
    archived: false,
    deployment_module: null,
    manifest: v.manifest,
    queued_fire_at: null,
    last_fire_at: null,
    next_scheduled_run: null,
    version: v.version,
    version_id: v.id,
    created_by: v.created_by,
    created_at: v.created_at,
    updated_at: v.created_at,
    public_link_hash: null,
    public_link_at: null,
    webhook_hash: null,
    webhook_at: null,
  };
}

/**
 * A job by id or name, else a deleted one (as its last version): by its id, or the one of that
 * name deleted last. What finds the runs of a deleted job, which are kept.
 */
export async function jobOrDeletedByIdOrName(
  db: Db,
  ws: string,
  idOrName: string,
): Promise<JobRow | undefined> {
  const live = await jobByIdOrName(db, ws, idOrName);
  if (live) return live;
  const q = db.selectFrom('job_versions').selectAll().where('workspace_id', '=', ws);
  const last = await (
    isUuid(idOrName) ? q.where('job_id', '=', idOrName.toLowerCase()) : q.where('name', '=', idOrName)
  )
    .orderBy('created_at', 'desc')
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
  return last && asDeletedJob(last);
}

/**
 * Jobs by id; a deleted job (its runs stay) as its last version: inactive, unscheduled, so a run
 * of it still has its job.
 */
export async function jobsById(db: Db, ids: readonly string[]): Promise<JobRow[]> {
  if (ids.length === 0) return [];
  const wanted = [...new Set(ids)];
  const live = await db.selectFrom('jobs').selectAll().where('id', 'in', wanted).execute();
  const missing = wanted.filter((id) => !live.some((j) => j.id === id));
  if (missing.length === 0) return live;
  const last = await db
    .selectFrom('job_versions')
    .selectAll()
    .distinctOn('job_id')
    .where('job_id', 'in', missing)
    .orderBy('job_id')
    .orderBy('version', 'desc')
    .execute();
  return [...live, ...last.map(asDeletedJob)];
}

/** A page of the workspace's jobs by name, with the total. */
export async function listJobs(
  db: Db,
  ws: string,
  limit: number,
  offset: number,
): Promise<{ rows: JobRow[]; total: number }> {
  const [rows, count] = await Promise.all([
    db
      .selectFrom('jobs')
      .selectAll()
      .where('workspace_id', '=', ws)
      .orderBy('name', 'asc')
      .limit(limit)
      .offset(offset)
      .execute(),
    db
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('workspace_id', '=', ws)
      .executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(count.n) };
}

/** A page of a job's versions, newest first, with the total. */
export async function listJobVersions(
  db: Db,
  jobId: string,
  limit: number,
  offset: number,
): Promise<{ rows: JobVersionRow[]; total: number }> {
  const [rows, count] = await Promise.all([
    db
      .selectFrom('job_versions')
      .selectAll()
      .where('job_id', '=', jobId)
      .orderBy('version', 'desc')
      .limit(limit)
      .offset(offset)
      .execute(),
    db
      .selectFrom('job_versions')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('job_id', '=', jobId)
      .executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(count.n) };
}

/** A version of a job by id, number or "latest". */
export function jobVersion(db: Db, jobId: string, idOrNumber: string): Promise<JobVersionRow | undefined> {
  const q = db.selectFrom('job_versions').selectAll().where('job_id', '=', jobId);
  if (idOrNumber === 'latest') return q.orderBy('version', 'desc').limit(1).executeTakeFirst();
  if (isUuid(idOrNumber)) return q.where('id', '=', idOrNumber.toLowerCase()).executeTakeFirst();
  if (/^\d{1,9}$/.test(idOrNumber)) return q.where('version', '=', Number(idOrNumber)).executeTakeFirst();
  return Promise.resolve(undefined);
}

/** The job a webhook's token hash starts (any workspace: the token is the credential), or undefined. */
export function jobByWebhookHash(db: Db, tokenHash: string): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').selectAll().where('webhook_hash', '=', tokenHash).executeTakeFirst();
}

/** The job a public link's token hash opens (any workspace: the token is the credential), or undefined. */
export function jobByPublicLinkHash(db: Db, tokenHash: string): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').selectAll().where('public_link_hash', '=', tokenHash).executeTakeFirst();
}

/** An interactive job by id, in any workspace (the proxy's `/i/<job id>/`); the caller checks membership. */
export function interactiveJobById(db: Db, jobId: string): Promise<JobRow | undefined> {
  if (!isUuid(jobId)) return Promise.resolve(undefined);
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', jobId.toLowerCase())
    .where('kind', '=', 'interactive')
    .executeTakeFirst();
}

/** The manifest part of a job spec as the `jobs` row holds it (validated: it is JSON in the database). */
export function manifestOf(row: Pick<JobRow, 'manifest'>): JobManifest | null {
  if (row.manifest === null || row.manifest === undefined) return null;
  const r = jobManifestSchema.safeParse(row.manifest);
  return r.success ? r.data : null;
}

/** Non-archived jobs whose stored triggers hold exactly `trigger` (`job.success:jobs.a.b`): the chain reactor's read. */
export function jobsTriggeredBy(db: Db, ws: string, trigger: string): Promise<JobRow[]> {
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('workspace_id', '=', ws)
    .where('archived', '=', false)
    .where(sql<boolean>`triggers @> ARRAY[${trigger}]::text[]`)
    .orderBy('name', 'asc')
    .execute();
}

/** The workspace's manifest jobs (archived or not), by job ref: archiving, selectors and the refresh cascade. */
export function manifestJobs(db: Db, ws: string, opts: { archived?: boolean } = {}): Promise<JobRow[]> {
  let q = db.selectFrom('jobs').selectAll().where('workspace_id', '=', ws).where('job_ref', 'is not', null);
  if (opts.archived !== undefined) q = q.where('archived', '=', opts.archived);
  return q.orderBy('job_ref', 'asc').execute();
}
