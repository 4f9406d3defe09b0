import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { ApiError, badRequest, forbidden, notFound, unauthorized } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { Principal } from '../auth/authenticator.js';
import { IdentityRepository } from '../auth/identity.repository.js';
import { hashesEqual, hashSecret } from '../auth/tokens.js';
import { FailureLimiter } from '../quota/failure-limiter.js';
import { UserHandler } from '../user/user.handler.js';
import { WorkspaceRepository } from '../workspace/workspace.repository.js';
import { CredentialsRepository } from './credentials.repository.js';
import { dummyHash, hashPassword, passwordMatches, passwordProblem } from './passwords.js';
import { SessionsRepository, type SessionRow } from './sessions.repository.js';

/** Failed sign-ins allowed per email + client address within the window, then 429. */
const MAX_FAILURES = 5;
/** …and per client address over all emails (guessing one password for many accounts). */
const MAX_FAILURES_PER_ADDRESS = 50;
const FAILURE_WINDOW_MS = 15 * 60_000;
const WRONG = 'wrong email or password';

export interface ClientInfo {
  userAgent: string;
  ip: string;
}

/** What the cookies of a new session carry: shown once, only their hashes are stored. */
export interface StartedSession {
  cookie: string;
  csrf: string;
  row: SessionRow;
}

export type SessionPrincipal = Principal & { sessionId: string; csrfHash: string };

const userView = (u: { id: string; email: string; name: string; is_admin: boolean }) => ({
  id: u.id,
  email: u.email,
  name: u.name,
  admin: u.is_admin,
});

/**
 * Dashboard sessions and passwords: the one application service behind the sign-in routes, the
 * caller's sessions and password (REST and gRPC) and the admin's set-password. Secrets (password
 * hashes, session and CSRF values) stay in gateway-owned tables as hashes; nothing of them goes
 * to events, the bus, responses or logs.
 */
@Injectable()
export class SessionsService {
  private readonly failures = new FailureLimiter(MAX_FAILURES, FAILURE_WINDOW_MS);
  private readonly addressFailures = new FailureLimiter(MAX_FAILURES_PER_ADDRESS, FAILURE_WINDOW_MS);
  readonly idleMs: number;
  readonly maxMs: number;

  constructor(
    @Inject(SessionsRepository) private readonly sessions: SessionsRepository,
    @Inject(CredentialsRepository) private readonly credentials: CredentialsRepository,
    @Inject(IdentityRepository) private readonly identities: IdentityRepository,
    @Inject(WorkspaceRepository) private readonly workspaces: WorkspaceRepository,
    @Inject(UserHandler) private readonly users: UserHandler,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.idleMs = ctx.config.sessions.idleMs;
    this.maxMs = ctx.config.sessions.maxMs;
  }

  /** Email + password → a new session; one 401 message for every failure, 429 past the limit. */
  async passwordSignIn(email: string, password: string, client: ClientInfo): Promise<StartedSession> {
    const key = `${email.trim().toLowerCase()}|${client.ip}`;
    const wait = Math.max(this.failures.wait(key), this.addressFailures.wait(client.ip));
    if (wait > 0)
      throw new ApiError(429, `too many failed sign-ins: try again in ${wait} s`, { retry_after: wait });
    const user = await this.identities.userByEmail(email);
    const stored = user ? await this.credentials.passwordHash(user.id) : null;
    // Verify against a dummy hash when there is nothing to verify, so timing tells nothing.
    const ok = await passwordMatches(stored ?? (await dummyHash()), password);
    if (!user || !stored || !ok || user.disabled_at) {
      this.failures.fail(key);
      this.addressFailures.fail(client.ip);
      throw unauthorized(WRONG);
    }
    this.failures.succeed(key);
    return this.start(user.id, 'password', client);
  }

  /** Starts a session for a user already authenticated (password or OIDC). */
  async start(userId: string, method: SessionRow['method'], client: ClientInfo): Promise<StartedSession> {
    const now = new Date();
    const cookie = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const row: SessionRow = {
      id: randomBytes(12).toString('hex'),
      token_hash: hashSecret(cookie),
      csrf_hash: hashSecret(csrf),
      user_id: userId,
      method,
      user_agent: client.userAgent.slice(0, 300),
      ip: client.ip.slice(0, 100),
      created_at: now,
      last_seen_at: now,
      expires_at: new Date(now.getTime() + this.maxMs),
      revoked_at: null,
    };
    await this.sessions.prune(now);
    await this.sessions.insert(row);
    return { cookie, csrf, row };
  }

  /** The principal behind a session cookie, or a 401 saying why not. Moves its last use forward. */
  async authenticate(cookie: string): Promise<SessionPrincipal> {
    const row = await this.sessions.byTokenHash(hashSecret(cookie));
    const now = new Date();
    const why = await this.refusal(row, now);
    if (why || !row) throw unauthorized(why ?? 'not signed in');
    const user = await this.identities.userById(row.user_id);
    if (!user) throw unauthorized('not signed in');
    await this.sessions.touch(row.id, now, Math.min(60_000, this.idleMs / 4));
    return {
      userId: user.id,
      email: user.email,
      tokenId: null,
      tokenExpiresAt: row.expires_at,
      sessionId: row.id,
      csrfHash: row.csrf_hash,
    };
  }

  /** Whether the header's CSRF value is the one issued with this session. */
  csrfMatches(p: SessionPrincipal, header: string | undefined): boolean {
    return header !== undefined && header.length > 0 && hashesEqual(p.csrfHash, hashSecret(header));
  }

  /** Why a session stopped working (for long-lived responses), or null while it works. */
  async recheck(sessionId: string): Promise<string | null> {
    return this.refusal(await this.sessions.byId(sessionId), new Date());
  }

  private async refusal(row: SessionRow | undefined, now: Date): Promise<string | null> {
    if (!row) return 'not signed in';
    if (row.revoked_at) return 'signed out: sign in again';
    if (row.expires_at <= now || this.idleExpiry(row) <= now) return 'session expired: sign in again';
    const user = await this.identities.userById(row.user_id);
    if (!user || user.disabled_at) return 'the user is disabled';
    return null;
  }

  private idleExpiry(row: SessionRow): Date {
    return new Date(Math.min(row.last_seen_at.getTime() + this.idleMs, row.expires_at.getTime()));
  }

  private sessionView(row: SessionRow, currentId: string | null) {
    return {
      id: row.id,
      method: row.method,
      created_at: row.created_at.toISOString(),
      last_seen_at: row.last_seen_at.toISOString(),
      expires_at: row.expires_at.toISOString(),
      idle_expires_at: this.idleExpiry(row).toISOString(),
      user_agent: row.user_agent,
      ip: row.ip,
      current: row.id === currentId,
    };
  }

  /** `GET /auth/session`: the caller, their workspaces and (signed in with a cookie) the session. */
  async current(p: Principal) {
    const user = await this.identities.userById(p.userId);
    if (!user) throw unauthorized('not signed in');
    const row = p.sessionId ? await this.sessions.byId(p.sessionId) : undefined;
    const mine = await this.workspaces.ofUser(p.userId);
    return {
      user: userView(user),
      workspaces: mine.map((w) => ({ id: w.id, name: w.name, role: w.role })),
      session: row
        ? {
            id: row.id,
            created_at: row.created_at.toISOString(),
            expires_at: row.expires_at.toISOString(),
            idle_expires_at: this.idleExpiry(row).toISOString(),
          }
        : null,
    };
  }

  async signedInView(started: StartedSession) {
    const user = await this.identities.userById(started.row.user_id);
    if (!user) throw unauthorized('not signed in');
    return {
      user: userView(user),
      csrf_token: started.csrf,
      expires_at: started.row.expires_at.toISOString(),
    };
  }

  /** Ends the session behind a cookie, if any (a new sign-in replaces the browser's old session). */
  async endByCookie(cookie: string | undefined): Promise<void> {
    if (!cookie) return;
    const row = await this.sessions.byTokenHash(hashSecret(cookie));
    if (row) await this.sessions.revoke(row.user_id, row.id, new Date());
  }

  async signOut(p: Principal | undefined): Promise<void> {
    if (p?.sessionId) await this.sessions.revoke(p.userId, p.sessionId, new Date());
  }

  /** The caller's open sessions, newest first. */
  async list(p: Principal) {
    const now = new Date();
    const rows = (await this.sessions.open(p.userId, now)).filter((r) => this.idleExpiry(r) > now);
    return { items: rows.map((r) => this.sessionView(r, p.sessionId)) };
  }

  async revoke(p: Principal, id: string) {
    const row = await this.sessions.byId(id);
    const now = new Date();
    if (!row || row.user_id !== p.userId || (await this.refusal(row, now)) !== null)
      throw notFound(`session ${id} not found`);
    await this.sessions.revoke(p.userId, id, now);
    return { id, revoked: true };
  }

  /** The caller changes their password: the current one is checked, the user's other sessions end. */
  async changePassword(p: Principal, current: string, next: string, client: ClientInfo) {
    const key = `${p.email}|${client.ip}`;
    const wait = this.failures.wait(key);
    if (wait > 0)
      throw new ApiError(429, `too many wrong passwords: try again in ${wait} s`, { retry_after: wait });
    const stored = await this.credentials.passwordHash(p.userId);
    if (!stored)
      throw new ApiError(
        409,
        'you have no local password: ask an administrator (runway admin users set-password)',
      );
    if (!(await passwordMatches(stored, current))) {
      this.failures.fail(key);
      throw forbidden('the current password is wrong');
    }
    this.failures.succeed(key);
    await this.storePassword(p.userId, p.email, next, { by: 'self', actor: p.userId });
    await this.sessions.revokeAllOf(p.userId, new Date(), p.sessionId ?? undefined);
    return { changed: true };
  }

  /** An administrator sets a user's password (`runway admin users set-password`); their sessions end. */
  async setPassword(admin: Principal, user: string, password: string) {
    const u = await this.identities.userByIdOrEmail(user);
    if (!u) throw notFound(`user ${user} not found`);
    await this.storePassword(u.id, u.email, password, { by: 'admin', actor: admin.userId });
    await this.sessions.revokeAllOf(u.id, new Date());
    return { user_id: u.id, email: u.email, password_set: true };
  }

  /** 400 with the reason when `password` is too weak for the account `email`. */
  requireStrong(password: string, email: string): void {
    const problem = passwordProblem(password, email);
    if (problem) throw badRequest(problem);
  }

  /**
   * Stores the argon2id hash of a new password (checked for strength first) in the gateway's
   * table, and records `UserPasswordChanged` (no hash) in the user's history.
   */
  async storePassword(
    userId: string,
    email: string,
    password: string,
    who: { by: 'self' | 'admin'; actor: string },
  ): Promise<void> {
    this.requireStrong(password, email);
    await this.credentials.setPasswordHash(userId, await hashPassword(password), new Date());
    await this.users.recordPasswordChange(userId, who.by, who.actor);
  }
}
