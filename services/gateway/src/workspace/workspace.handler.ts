import { Inject, Injectable } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import { AggregateTypes, type WorkspaceEvent } from '#libs/contracts';
import { CommandHandler, type CommitMeta } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { workspaceDecider, type WorkspaceCommand, type WorkspaceState } from './workspace.decider.js';

/** load → decide → append for the workspace aggregate (the event store's one command handler). */
@Injectable()
export class WorkspaceHandler {
  private readonly workspaces: CommandHandler<WorkspaceState, WorkspaceCommand, WorkspaceEvent>;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {
    this.workspaces = new CommandHandler(ctx.store, workspaceDecider);
  }

  handle(workspaceId: string, command: WorkspaceCommand, meta: CommitMeta) {
    return this.workspaces.handle(
      { workspaceId, type: AggregateTypes.workspace, id: workspaceId },
      command,
      meta,
    );
  }

  /** Whether the workspace aggregate exists in the event store. */
  async exists(workspaceId: string): Promise<boolean> {
    const ref = { workspaceId, type: AggregateTypes.workspace, id: workspaceId };
    return (await this.ctx.store.lastSequenceOf(ref)) > 0;
  }

  /** Creates a workspace with an id decided beforehand (the first start's default workspace). */
  createWithId(workspaceId: string, name: string, ownerId: string, meta: CommitMeta) {
    return this.handle(workspaceId, { type: 'CreateWorkspace', workspaceId, name, ownerId }, meta);
  }

  create(name: string, ownerId: string, meta: Omit<CommitMeta, 'commandId'> & { commandId?: string }) {
    // With a client idempotency key the id is derived from it, so a retried create finds its commit.
    const workspaceId = meta.commandId ? uuidFrom(`${meta.actor}:${meta.commandId}`) : randomUUID();
    return this.handle(
      workspaceId,
      { type: 'CreateWorkspace', workspaceId, name, ownerId },
      { ...meta, commandId: meta.commandId ?? randomUUID() },
    ).then((r) => ({ ...r, workspaceId }));
  }
}

/** A stable UUID (v4 layout) derived from a string. */
function uuidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
