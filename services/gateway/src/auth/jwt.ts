import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** Claims of the JWTs the CLI logins receive (the dlt CLI requires sub and email, aud "cli"). */
export const jwtClaimsSchema = z.object({
  sub: z.string().uuid(),
  email: z.string(),
  aud: z.literal('cli'),
  iat: z.number().int(),
  exp: z.number().int(),
  jti: z.string().regex(/^[a-f0-9]{16}$/),
  iss: z.literal('runway'),
});
export type JwtClaims = z.infer<typeof jwtClaimsSchema>;

const b64 = (v: Buffer | string) => Buffer.from(v).toString('base64url');

/**
 * The server's signing key, the same on every gateway that shares the data dir or the master key:
 * - `<dataDir>/jwt.key` (0600) when it exists (installations made before, or without, RUNWAY_MASTER_KEY);
 * - else, when RUNWAY_MASTER_KEY is set, derived from it (HKDF-SHA256): gateways on other machines
 *   with their own data dirs accept each other's logins, as they must share the master key anyway;
 * - else 32 random bytes written to `<dataDir>/jwt.key` on first start.
 */
export function loadSigningKey(dataDir: string, masterKey?: Buffer): Buffer {
  const file = join(dataDir, 'jwt.key');
  if (!existsSync(file) && masterKey)
    return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'runway jwt signing key v1', 32));
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077)
    throw new Error(`${file} must not be readable by others (mode ${mode.toString(8)}): chmod 600 it`);
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length < 32) throw new Error(`${file} does not hold a 32-byte base64 key`);
  return key;
}

export function signJwt(key: Buffer, claims: JwtClaims): string {
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64(JSON.stringify(claims));
  const sig = createHmac('sha256', key).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64(sig)}`;
}

export type JwtCheck =
  { ok: true; claims: JwtClaims } | { ok: false; reason: 'malformed' | 'signature' | 'expired' | 'claims' };

export function verifyJwt(key: Buffer, token: string, now = Date.now()): JwtCheck {
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'malformed' };
  const [head, body, sig] = parts as [string, string, string];
  let header: unknown;
  let payload: unknown;
  try {
    header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if ((header as { alg?: unknown })?.alg !== 'HS256') return { ok: false, reason: 'signature' };
  const expected = createHmac('sha256', key).update(`${head}.${body}`).digest();
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: 'signature' };
  const claims = jwtClaimsSchema.safeParse(payload);
  if (!claims.success) return { ok: false, reason: 'claims' };
  if (claims.data.exp * 1000 <= now) return { ok: false, reason: 'expired' };
  return { ok: true, claims: claims.data };
}
