import { Inject, Injectable } from '@nestjs/common';
import { Kvm, type KV } from '@nats-io/kv';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { hashesEqual, hashSecret } from './tokens.js';

/** A refresh token lives 30 days after its last use (the KV entry's TTL is renewed on rotation). */
export const REFRESH_TTL_MS = 30 * 24 * 3600_000;

/**
 * One login family: the device-flow login and every JWT refreshed from it. Only the hash of the
 * newest refresh token is kept; `jti` is the JWT issued with it (revoking that JWT ends the family).
 */
const familySchema = z.object({
  userId: z.string().uuid(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  jti: z.string(),
  /** The approver's token expiry: no JWT or refresh of the family outlives it. */
  capAt: z.string().nullable(),
  revoked: z.boolean(),
  rotatedAt: z.string(),
});
export type RefreshFamily = z.infer<typeof familySchema>;

/** Refresh tokens look like `rrt_<family id>_<secret>`. */
const TOKEN_RE = /^rrt_([a-f0-9]{32})_([A-Za-z0-9_-]{43})$/;

export type RefreshCheck =
  { ok: true; familyId: string; family: RefreshFamily; revision: number } | { ok: false; reason: string };

/**
 * Refresh tokens of the WorkOS-style device flow (dlt-runtime 0.26.1): stored hashed in a JetStream
 * KV bucket (every gateway replica sees the same state), rotated on every use. Presenting an older
 * token of a family again (a replay: the client always stores the newest) revokes the family.
 */
@Injectable()
export class RefreshTokens {
  private kv: Promise<KV> | undefined;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  private bucket(): Promise<KV> {
    this.kv ??= new Kvm(this.ctx.nats).create(`${this.ctx.config.events.stream}_refresh_tokens`, {
      ttl: REFRESH_TTL_MS,
      history: 1,
      maxValueSize: 4 * 1024,
      replicas: this.ctx.config.nats.replicas,
      ...(this.ctx.config.kvMaxBytes > 0 ? { max_bytes: this.ctx.config.kvMaxBytes } : {}),
    });
    return this.kv;
  }

  private static newSecret(): string {
    return randomBytes(32).toString('base64url');
  }

  /** Starts a family for a fresh login; returns the refresh token (shown once). */
  async issue(userId: string, jti: string, capAt: string | null): Promise<string> {
    const kv = await this.bucket();
    const familyId = randomBytes(16).toString('hex');
    const secret = RefreshTokens.newSecret();
    const family: RefreshFamily = {
      userId,
      hash: hashSecret(secret),
      jti,
      capAt,
      revoked: false,
      rotatedAt: new Date().toISOString(),
    };
    await kv.create(`f_${familyId}`, JSON.stringify(family));
    return `rrt_${familyId}_${secret}`;
  }

  /** Finds the family of a presented token; a replayed older token revokes the family. */
  async check(token: string): Promise<RefreshCheck> {
    const m = TOKEN_RE.exec(token);
    if (!m) return { ok: false, reason: 'invalid refresh token' };
    const familyId = m[1]!;
    const secret = m[2]!;
    const kv = await this.bucket();
    const cur = await kv.get(`f_${familyId}`);
    if (!cur || cur.operation !== 'PUT') return { ok: false, reason: 'invalid or expired refresh token' };
    const family = familySchema.parse(cur.json());
    if (family.revoked) return { ok: false, reason: 'refresh token has been revoked: log in again' };
    if (!hashesEqual(family.hash, hashSecret(secret))) {
      await kv
        .update(`f_${familyId}`, JSON.stringify({ ...family, revoked: true }), cur.revision)
        .catch(() => undefined);
      return { ok: false, reason: 'refresh token was already used: the login is revoked, log in again' };
    }
    if (family.capAt && Date.parse(family.capAt) <= Date.now())
      return { ok: false, reason: 'the token that approved this login has expired: log in again' };
    return { ok: true, familyId, family, revision: cur.revision };
  }

  /** Rotates a checked family to a new JWT; null when a concurrent refresh won. */
  async rotate(checked: { familyId: string; family: RefreshFamily; revision: number }, jti: string) {
    const kv = await this.bucket();
    const secret = RefreshTokens.newSecret();
    const next: RefreshFamily = {
      ...checked.family,
      hash: hashSecret(secret),
      jti,
      rotatedAt: new Date().toISOString(),
    };
    try {
      await kv.update(`f_${checked.familyId}`, JSON.stringify(next), checked.revision);
    } catch {
      return null;
    }
    return `rrt_${checked.familyId}_${secret}`;
  }

  /** Ends a family (logout); false when the token names none. */
  async revoke(token: string): Promise<boolean> {
    const m = TOKEN_RE.exec(token);
    if (!m) return false;
    const kv = await this.bucket();
    const cur = await kv.get(`f_${m[1]}`);
    if (!cur || cur.operation !== 'PUT') return false;
    const family = familySchema.parse(cur.json());
    if (!hashesEqual(family.hash, hashSecret(m[2]!))) return false;
    await kv.put(`f_${m[1]}`, JSON.stringify({ ...family, revoked: true }));
    return true;
  }
}
