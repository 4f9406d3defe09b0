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
  CommandHandler,
  DomainError,
  NotFoundError,
  type AggregateRef,
  type CommitMeta,
  type EventStore,
} from '#libs/eventstore';
import { runsEndedTotal } from '#libs/observability';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { EXECUTION_DB } from '../database.js';
import type { ExecutionTables } from '../migrations/index.js';
import { runForCancel } from './read-models/run-cancel.queries.js';
import { runDecider, terminalStateMessage, type RunCommand, type RunState } from './run.decider.js';
import type { RunEvent } from './run.events.js';

function countRunEnd(e: RunEvent): void {
  if (e.type === 'RunCompleted') runsEndedTotal.inc({ status: 'completed', reason: '' });
  else if (e.type === 'RunFailed') runsEndedTotal.inc({ status: 'failed', reason: e.data.reason });
  else if (e.type === 'RunCancelled') runsEndedTotal.inc({ status: 'cancelled', reason: '' });
  else if (e.type === 'RunSkipped') runsEndedTotal.inc({ status: 'skipped', reason: '' }); // free text: not a label
}

export function runRef(workspaceId: string, runId: string): AggregateRef {
  return { workspaceId, type: AggregateTypes.run, id: runId };
}

/** load → decide → append for the run aggregate (workers, the reaper). */
export class RunAggregates {
  private readonly handler: CommandHandler<RunState, RunCommand, RunEvent>;

  constructor(readonly store: EventStore) {
    // Short streams, written by several processes (workers, the reaper, the RPC edge): no cache.
    this.handler = new CommandHandler(store, runDecider, { maxRetries: 20 });
  }

  async handle(workspaceId: string, runId: string, command: RunCommand, meta: CommitMeta) {
    const r = await this.handler.handle(runRef(workspaceId, runId), command, meta);
    // runway_runs_ended_total{status,reason}: every run's end goes through here once (not a retry).
    if (!r.duplicate) for (const e of r.events) countRunEnd(e);
    return r;
  }

  /** The run's current state, without deciding anything. */
  load(workspaceId: string, runId: string) {
    return this.handler.load(runRef(workspaceId, runId));
  }
}

/** The run aggregate's commands with the cancel of the RPC edge, checked against the runs read model first. */
export class RunCommands extends RunAggregates {
  constructor(
    store: EventStore,
    private readonly db: Kysely<ExecutionTables>,
  ) {
    super(store);
  }

  async cancel(req: CancelRunRequest): Promise<CancelRunReply> {
    const row = await runForCancel(this.db, req.workspaceId, req.runId);
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
  constructor(
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
    @Inject(EXECUTION_DB) db: Kysely<ExecutionTables>,
  ) {
    super(ctx.store, db);
  }
}
