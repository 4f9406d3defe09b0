import { Inject, Injectable } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import { AggregateTypes, type UserEvent } from '#libs/contracts';
import { EmailClaimed } from './email-claim.events.js';
import {
  ConflictError,
  GLOBAL_WORKSPACE,
  CommandHandler,
  type AggregateRef,
  type CommitMeta,
} from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { newApiToken } from '../auth/tokens.js';
import {
  emailClaimDecider,
  normaliseEmail,
  type EmailClaim,
  type EmailClaimCommand,
  type EmailClaimState,
} from './email-claim.decider.js';
import type { EmailEvent } from './email-claim.events.js';
import { userDecider, type ParentToken, type UserCommand, type UserState } from './user.decider.js';

const userRef = (userId: string): AggregateRef => ({
  workspaceId: GLOBAL_WORKSPACE,
  type: AggregateTypes.user,
  id: userId,
});

/** The claim aggregate of an email: one subject per normalised address (its SHA-256, a valid token). */
export function emailRef(email: string): AggregateRef {
  const id = createHash('sha256').update(normaliseEmail(email)).digest('hex');
  return { workspaceId: GLOBAL_WORKSPACE, type: AggregateTypes.email, id };
}

/** load → decide → append for the user and email-claim aggregates (the event store's one command handler). */
@Injectable()
export class UserHandler {
  private readonly users: CommandHandler<UserState, UserCommand, UserEvent>;
  private readonly claims: CommandHandler<EmailClaimState, EmailClaimCommand, EmailEvent>;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {
    this.users = new CommandHandler(ctx.store, userDecider);
    this.claims = new CommandHandler(ctx.store, emailClaimDecider);
  }

  handle(userId: string, command: UserCommand, meta: CommitMeta) {
    return this.users.handle(userRef(userId), command, meta);
  }

  /**
   * Registers a user under a claim of their email, decided on the event store with optimistic
   * concurrency (the claim's subject must be empty): of concurrent registrations of one email, one
   * wins and the others get a ConflictError (409). The claim carries the registration, so a claim
   * whose registration never happened (a crash in between) is finished by the next attempt.
   */
  async register(
    email: string,
    name: string,
    actor: string,
    opts: { admin?: boolean; userId?: string } = {},
  ): Promise<{ userId: string; seq: number }> {
    const claim: EmailClaim = {
      email: normaliseEmail(email),
      userId: opts.userId ?? randomUUID(),
      name,
      admin: opts.admin ?? false,
    };
    try {
      await this.claims.handle(
        emailRef(claim.email),
        { type: 'ClaimEmail', ...claim },
        { commandId: `claim-${claim.userId}`, actor },
      );
    } catch (err) {
      if (err instanceof ConflictError) {
        const held = await this.claimOf(claim.email);
        if (held && held.userId !== claim.userId) await this.finishRegistration(held, actor);
      }
      throw err;
    }
    const r = await this.finishRegistration(claim, actor);
    return { userId: claim.userId, seq: r.seq };
  }

  /** Who holds an email in the write model (null when nobody does). */
  async claimOf(email: string): Promise<EmailClaim | null> {
    const { events } = await this.ctx.store.read(emailRef(email));
    const first = events.find((e) => e.type === EmailClaimed.type);
    return first ? EmailClaimed.schema.parse(first.data) : null;
  }

  /** Idempotent: the command id is derived from the user id, and registering twice decides nothing. */
  private async finishRegistration(claim: EmailClaim, actor: string) {
    return this.handle(
      claim.userId,
      {
        type: 'RegisterUser',
        userId: claim.userId,
        email: claim.email,
        name: claim.name,
        admin: claim.admin,
      },
      { commandId: `register-${claim.userId}`, actor },
    );
  }

  /** Whether the user aggregate exists in the event store (not only in a read model). */
  async exists(userId: string): Promise<boolean> {
    return (await this.ctx.store.lastSequenceOf(userRef(userId))) > 0;
  }

  async revokeToken(userId: string, tokenId: string, actor: string) {
    return this.handle(userId, { type: 'RevokeToken', tokenId }, { commandId: randomUUID(), actor });
  }

  async disable(userId: string, actor: string, reason?: string) {
    return this.handle(
      userId,
      { type: 'DisableUser', userId, by: actor, ...(reason ? { reason } : {}) },
      { commandId: randomUUID(), actor },
    );
  }

  async enable(userId: string, actor: string) {
    return this.handle(userId, { type: 'EnableUser', userId }, { commandId: randomUUID(), actor });
  }

  /** Records that the user's password was set (the hash itself stays in the gateway's table). */
  async recordPasswordChange(userId: string, by: 'self' | 'admin', actor: string) {
    return this.handle(
      userId,
      { type: 'RecordPasswordChange', userId, at: new Date().toISOString(), by },
      { commandId: randomUUID(), actor },
    );
  }

  /**
   * Records a CLI JWT (its id is the JWT's jti) so it can be listed, expired and revoked like any
   * token. Returns the expiry decided (the JWT must not claim a later one).
   */
  async recordJwt(
    userId: string,
    jti: string,
    jwtHash: string,
    expiresAt: Date,
    actor: string,
    parent?: ParentToken,
  ) {
    return this.handle(
      userId,
      {
        type: 'IssueToken',
        tokenId: jti,
        name: 'cli login (device flow)',
        hash: jwtHash,
        expiresAt: expiresAt.toISOString(),
        now: new Date().toISOString(),
        ...(parent ? { parent } : {}),
      },
      { commandId: `jwt-${jti}`, actor },
    );
  }

  /**
   * Issues a token; the returned secret is shown once and never stored. Minted with `parent` (the
   * caller's own token), it expires no later than the parent.
   */
  async issueToken(
    userId: string,
    name: string,
    expiresAt: Date | null,
    actor: string,
    parent?: ParentToken,
  ) {
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
        ...(parent ? { parent } : {}),
      },
      { commandId: randomUUID(), actor },
    );
    return { tokenId: t.id, token: t.token, seq: r.seq };
  }
}
