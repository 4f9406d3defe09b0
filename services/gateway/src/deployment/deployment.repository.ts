import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import type { CheckpointTable } from '#libs/projections';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { DeploymentsTables } from '../../../deployments/src/migrations/index.js';

/** The deployments service's read model, as the gateway reads it (the only SQL of this area). */
type Tables = DeploymentsTables & CheckpointTable;

export type DeploymentRow = Tables['deployments'];
export type DeploymentFileRow = Tables['deployment_files'];

@Injectable()
export class DeploymentRepository {
  private readonly db: Kysely<Tables>;
  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {
    this.db = ctx.db as Kysely<Tables>;
  }

  /** Newest first. */
  async list(
    workspaceId: string,
    limit: number,
    offset: number,
  ): Promise<{ rows: DeploymentRow[]; total: number }> {
    const [rows, count] = await Promise.all([
      this.db
        .selectFrom('deployments')
        .selectAll()
        .where('workspace_id', '=', workspaceId)
        .orderBy('version', 'desc')
        .limit(limit)
        .offset(offset)
        .execute(),
      this.db
        .selectFrom('deployments')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('workspace_id', '=', workspaceId)
        .executeTakeFirst(),
    ]);
    return { rows, total: Number(count?.n ?? 0) };
  }

  latest(workspaceId: string): Promise<DeploymentRow | undefined> {
    return this.db
      .selectFrom('deployments')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
  }

  byVersion(workspaceId: string, version: number): Promise<DeploymentRow | undefined> {
    return this.db
      .selectFrom('deployments')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('version', '=', version)
      .executeTakeFirst();
  }

  byId(workspaceId: string, id: string): Promise<DeploymentRow | undefined> {
    return this.db
      .selectFrom('deployments')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  /** Files of a version, in code point order of their paths. */
  files(deploymentId: string): Promise<DeploymentFileRow[]> {
    return this.db
      .selectFrom('deployment_files')
      .selectAll()
      .where('deployment_id', '=', deploymentId)
      .orderBy(
        (eb) => eb.ref('path'),
        (ob) => ob.collate('C'),
      )
      .execute();
  }

  /** Which of these blob hashes some version of the workspace already holds (so they exist). */
  async referencedBlobs(workspaceId: string, sha256s: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < sha256s.length; i += 5000) {
      const chunk = sha256s.slice(i, i + 5000);
      const rows = await this.db
        .selectFrom('deployment_files as f')
        .innerJoin('deployments as d', 'd.id', 'f.deployment_id')
        .select('f.sha256')
        .distinct()
        .where('f.workspace_id', '=', workspaceId)
        .where('f.type', '=', 'file')
        .where('f.sha256', 'in', chunk)
        .execute();
      for (const r of rows) out.add(r.sha256);
    }
    return out;
  }

  /** Resolves true once the `deployments` projection has applied stream sequence `seq`, false after the timeout. */
  waitForProjection(seq: number, timeoutMs = 15_000): Promise<boolean> {
    return this.ctx.waitForProjection('deployments', seq, timeoutMs).then(
      () => true,
      () => false,
    );
  }
}
