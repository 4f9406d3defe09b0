import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AggregateTypes } from '#libs/contracts';
import { GLOBAL_WORKSPACE, handleCommand, type CommitMeta } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { newApiToken } from '../auth/tokens.js';
import { userDecider, type UserCommand } from './user.decider.js';

@Injectable()
export class UserHandler {
  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  handle(userId: string, command: UserCommand, meta: CommitMeta) {
    return handleCommand(
      this.ctx.store,
      userDecider,
      { workspaceId: GLOBAL_WORKSPACE, type: AggregateTypes.user, id: userId },
      command,
      meta,
    );
  }

  async register(email: string, name: string, actor: string, admin = false) {
    const userId = randomUUID();
    const r = await this.handle(
      userId,
      { type: 'RegisterUser', userId, email, name, admin },
      { commandId: randomUUID(), actor },
    );
    return { userId, seq: r.seq };
  }

  async revokeToken(userId: string, tokenId: string, actor: string) {
    return this.handle(userId, { type: 'RevokeToken', tokenId }, { commandId: randomUUID(), actor });
  }

  /** Records a CLI JWT (its id is the JWT's jti) so it can be listed, expired and revoked like any token. */
  async recordJwt(userId: string, jti: string, jwtHash: string, expiresAt: Date, actor: string) {
    return this.handle(
      userId,
      {
        type: 'IssueToken',
        tokenId: jti,
        name: 'cli login (device flow)',
        hash: jwtHash,
        expiresAt: expiresAt.toISOString(),
        now: new Date().toISOString(),
      },
      { commandId: `jwt-${jti}`, actor },
    );
  }

  /** Issues a token; the returned secret is shown once and never stored. */
  async issueToken(userId: string, name: string, expiresAt: Date | null, actor: string) {
    const t = newApiToken();
    const r = await this.handle(
      userId,
      {
        type: 'IssueToken',
        tokenId: t.id,
        name,
        hash: t.hash,
        expiresAt: expiresAt?.toISOString() ?? null,
        now: new Date().toISOString(),
      },
      { commandId: randomUUID(), actor },
    );
    return { tokenId: t.id, token: t.token, seq: r.seq };
  }
}
