import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** API tokens look like `rwy_<id>_<secret>`; only sha256(secret) is stored. */
export interface NewToken {
  id: string;
  secret: string;
  token: string;
  hash: string;
}

export function newApiToken(): NewToken {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  return { id, secret, token: `rwy_${id}_${secret}`, hash: hashSecret(secret) };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function parseApiToken(token: string): { id: string; secret: string } | undefined {
  const m = /^rwy_([a-f0-9]{16})_([A-Za-z0-9_-]{20,64})$/.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

export function hashesEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'hex');
  const bb = Buffer.from(b, 'hex');
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
