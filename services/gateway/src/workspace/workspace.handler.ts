import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AggregateTypes } from '#libs/contracts';
import { handleCommand, type CommitMeta } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { workspaceDecider, type WorkspaceCommand } from './workspace.decider.js';

/** load → decide → append for the workspace aggregate. */
@Injectable()
export class WorkspaceHandler {
  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  handle(workspaceId: string, command: WorkspaceCommand, meta: CommitMeta) {
    return handleCommand(this.ctx.store, workspaceDecider, { workspaceId, type: AggregateTypes.workspace, id: workspaceId }, command, meta);
  }

  create(name: string, ownerId: string, meta: Omit<CommitMeta, 'commandId'> & { commandId?: string }) {
    const workspaceId = randomUUID();
    return this.handle(workspaceId, { type: 'CreateWorkspace', workspaceId, name, ownerId }, { commandId: meta.commandId ?? randomUUID(), ...meta }).then(
      (r) => ({ ...r, workspaceId }),
    );
  }
}
