import { Inject, Injectable } from '@nestjs/common';
import type { Role } from '#libs/contracts';
import { ConflictError } from '#libs/eventstore';
import { notFound } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { parentOf, type Principal } from '../auth/authenticator.js';
import { IdentityRepository } from '../auth/identity.repository.js';
import { UserHandler } from '../user/user.handler.js';
import { WorkspaceHandler } from '../workspace/workspace.handler.js';
import { WorkspaceRepository } from '../workspace/workspace.repository.js';
import { SessionsService } from '../session/sessions.service.js';

export interface TokenRequest {
  name: string;
  expires_in_days?: number;
  expires_at?: string;
}

export type TokenState = 'active' | 'revoked' | 'expired';

interface TokenRow {
  id: string;
  user_id: string;
  name: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  parent_id: string | null;
}

function stateOf(t: Pick<TokenRow, 'expires_at' | 'revoked_at'>, now = Date.now()): TokenState {
  if (t.revoked_at) return 'revoked';
  if (t.expires_at && t.expires_at.getTime() <= now) return 'expired';
  return 'active';
}

export const tokenView = (t: TokenRow) => ({
  id: t.id,
  name: t.name,
  user_id: t.user_id,
  date_added: t.created_at.toISOString(),
  expires_at: t.expires_at?.toISOString() ?? null,
  revoked_at: t.revoked_at?.toISOString() ?? null,
  parent_id: t.parent_id,
  state: stateOf(t),
});

const userView = (u: {
  id: string;
  email: string;
  name: string;
  is_admin: boolean;
  created_at: Date;
  disabled_at: Date | null;
}) => ({
  id: u.id,
  email: u.email,
  name: u.name,
  admin: u.is_admin,
  date_added: u.created_at.toISOString(),
  disabled: u.disabled_at !== null,
  date_disabled: u.disabled_at?.toISOString() ?? null,
});

const organization = (userId: string, email: string, since: Date) => ({
  id: userId,
  name: email,
  description: null,
  date_added: since.toISOString(),
  date_updated: since.toISOString(),
});

function expiry(b: { expires_in_days?: number; expires_at?: string }): Date | null {
  if (b.expires_in_days) return new Date(Date.now() + b.expires_in_days * 86_400_000);
  if (b.expires_at) return new Date(b.expires_at);
  return null;
}

/**
 * The caller, users and API tokens: the one application service behind the REST routes and the
 * gRPC methods (instance-admin methods are declared so beside each route and method). Each write
 * waits for the read models, so the next request (a revoked or disabled token, a new user)
 * already sees it.
 */
@Injectable()
export class AccountsService {
  constructor(
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(UserHandler) private readonly users: UserHandler,
    @Inject(WorkspaceHandler) private readonly workspaces: WorkspaceHandler,
    @Inject(WorkspaceRepository) private readonly workspaceRows: WorkspaceRepository,
    @Inject(SessionsService) private readonly sessions: SessionsService,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {}

  async isAdmin(userId: string): Promise<boolean> {
    return (await this.identities.userById(userId))?.is_admin ?? false;
  }

  /** The caller and their default workspace (the oldest one they own, else the oldest they belong to), created on first call. */
  async me(p: Principal) {
    let mine = await this.workspaceRows.ofUser(p.userId);
    if (mine.length === 0) {
      const created = await this.workspaces.create(`${p.email}'s workspace`, p.userId, {
        actor: p.userId,
        commandId: `default-workspace-${p.userId}`,
      });
      await this.ctx.waitForProjections(created.seq);
      mine = await this.workspaceRows.ofUser(p.userId);
    }
    const ws = mine.find((w) => w.role === 'owner') ?? mine[0]!;
    return {
      user_id: p.userId,
      identity_id: p.userId,
      email: p.email,
      default_organization: organization(p.userId, p.email, ws.created_at),
      default_workspace: {
        id: ws.id,
        name: ws.name,
        description: null,
        date_added: ws.created_at.toISOString(),
        date_updated: ws.updated_at.toISOString(),
      },
      workspaces: mine.map((w) => ({ id: w.id, name: w.name, role: w.role })),
    };
  }

  /** Runway has no organizations: each user has one implicit organization whose id is the user's id. */
  async organization(p: Principal, id: string) {
    if (id !== p.userId) throw notFound(`organization ${id} not found`);
    const mine = await this.workspaceRows.ofUser(p.userId);
    return organization(p.userId, p.email, mine[0]?.created_at ?? new Date(0));
  }

  async myTokens(p: Principal) {
    return { items: (await this.identities.tokensOf(p.userId)).map(tokenView) };
  }

  /** Every token of the instance (admins), optionally of one user and in one state. */
  async allTokens(p: Principal, filter: { user?: string; state?: TokenState }) {
    let userId: string | undefined;
    if (filter.user) {
      const u = await this.identities.userByIdOrEmail(filter.user);
      if (!u) throw notFound(`user ${filter.user} not found`);
      userId = u.id;
    }
    const rows = await this.identities.allTokens({ userId });
    const items = rows
      .map((t) => ({ ...tokenView(t), email: t.email }))
      .filter((t) => !filter.state || t.state === filter.state);
    return { items };
  }

  async issueOwnToken(p: Principal, input: TokenRequest) {
    return this.issue(p.userId, input, p);
  }

  async issueTokenFor(p: Principal, user: string, input: TokenRequest) {
    const u = await this.identities.userByIdOrEmail(user);
    if (!u) throw notFound(`user ${user} not found`);
    return this.issue(u.id, input, p);
  }

  /** The caller's own tokens, or (admins) any token. */
  async revokeToken(p: Principal, tokenId: string) {
    const t = await this.identities.tokenById(tokenId);
    if (!t || (t.user_id !== p.userId && !(await this.isAdmin(p.userId))))
      throw notFound(`token ${tokenId} not found`);
    const r = await this.users.revokeToken(t.user_id, tokenId, p.userId);
    await this.ctx.waitForProjections(r.seq);
    const row = await this.identities.tokenById(tokenId);
    if (!row) throw notFound(`token ${tokenId} not found`);
    return tokenView(row);
  }

  async listUsers() {
    return { items: (await this.identities.listUsers()).map(userView) };
  }

  async createUser(
    p: Principal,
    input: { email: string; name?: string; workspace_id?: string; role?: Role; password?: string },
  ) {
    const email = input.email.trim().toLowerCase();
    if (input.password !== undefined) this.sessions.requireStrong(input.password, email);
    if (input.workspace_id && !(await this.identities.membership(input.workspace_id, p.userId))) {
      throw notFound(`workspace ${input.workspace_id} not found`);
    }
    // The event store decides (an email claim); this read catches users registered before claims existed.
    if (await this.identities.userByEmail(email))
      throw new ConflictError(`a user with email ${email} already exists`);
    const { userId, seq } = await this.users.register(email, input.name ?? email, p.userId);
    let last = seq;
    if (input.workspace_id) {
      const r = await this.workspaces.handle(
        input.workspace_id,
        { type: 'AddMember', userId, role: input.role ?? 'member' },
        { commandId: `add-${input.workspace_id}-${userId}`, actor: p.userId },
      );
      last = Math.max(last, r.seq);
    }
    if (input.password !== undefined)
      await this.sessions.storePassword(userId, email, input.password, { by: 'admin', actor: p.userId });
    await this.ctx.waitForProjections(last);
    return {
      id: userId,
      email,
      workspace_id: input.workspace_id ?? null,
      role: input.workspace_id ? (input.role ?? 'member') : null,
      password_set: input.password !== undefined,
    };
  }

  /** Disables a user (admins): every token of theirs stops working at once; nothing is deleted. */
  async disableUser(p: Principal, user: string, reason?: string) {
    const u = await this.identities.userByIdOrEmail(user);
    if (!u) throw notFound(`user ${user} not found`);
    const r = await this.users.disable(u.id, p.userId, reason);
    await this.ctx.waitForProjections(r.seq);
    return this.userById(u.id);
  }

  async enableUser(p: Principal, user: string) {
    const u = await this.identities.userByIdOrEmail(user);
    if (!u) throw notFound(`user ${user} not found`);
    const r = await this.users.enable(u.id, p.userId);
    await this.ctx.waitForProjections(r.seq);
    return this.userById(u.id);
  }

  private async userById(id: string) {
    const u = await this.identities.userById(id);
    if (!u) throw notFound(`user ${id} not found`);
    return userView(u);
  }

  private async issue(userId: string, input: TokenRequest, minter: Principal) {
    const t = await this.users.issueToken(userId, input.name, expiry(input), minter.userId, parentOf(minter));
    await this.ctx.waitForProjections(t.seq);
    const row = await this.identities.tokenById(t.tokenId);
    if (!row) throw new Error(`token ${t.tokenId} missing from the read model after its projection`);
    return { ...tokenView(row), token: t.token };
  }
}
