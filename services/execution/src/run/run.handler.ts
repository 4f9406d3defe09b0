import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';
import {
  AggregateTypes,
  TERMINAL_RUN_STATUSES,
  type CancelRunReply,
  type CancelRunRequest,
} from '#libs/contracts';
import {
  DomainError,
  handleCommand,
  NotFoundError,
  type AggregateRef,
  type EventStore,
} from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { ExecutionTables } from '../migrations/index.js';
import { runDecider, terminalStateMessage, type RunCommand } from './run.decider.js';

export function runRef(workspaceId: string, runId: string): AggregateRef {
  return { workspaceId, type: AggregateTypes.run, id: runId };
}

/** load → decide → append for the run aggregate (used by the RPC controller, workers and the reaper). */
export class RunCommands {
  constructor(
    readonly store: EventStore,
    private readonly db: Kysely<ExecutionTables>,
  ) {}

  handle(
    workspaceId: string,
    runId: string,
    command: RunCommand,
    meta: { commandId: string; actor: string },
  ) {
    return handleCommand(this.store, runDecider, runRef(workspaceId, runId), command, meta, {
      maxRetries: 20,
    });
  }

  async cancel(req: CancelRunRequest): Promise<CancelRunReply> {
    const row = await this.db
      .selectFrom('runs')
      .select(['number', 'status'])
      .where('id', '=', req.runId)
      .where('workspace_id', '=', req.workspaceId)
      .executeTakeFirst();
    if (!row) throw new NotFoundError(`run ${req.runId} not found`);
    // Refused before the aggregate is read: a run that ended long ago may be archived (its subject
    // empty), and a command on it would start a new aggregate instead of finding it ended.
    const terminal = TERMINAL_RUN_STATUSES.find((s) => s === row.status);
    if (terminal) throw new DomainError(terminalStateMessage(row.number, terminal));
    const r = await this.handle(
      req.workspaceId,
      req.runId,
      { type: 'RequestCancel', by: req.actor, known: { number: row.number } },
      { commandId: randomUUID(), actor: req.actor },
    );
    return { runId: req.runId, status: r.state.status, seq: r.seq };
  }
}

@Injectable()
export class RunHandler extends RunCommands {
  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    super(ctx.store, ctx.db as Kysely<ExecutionTables>);
  }
}
