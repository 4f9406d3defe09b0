import { Algorithm, hash, verify } from '@node-rs/argon2';

/** argon2id with OWASP's 2024 minimum (19 MiB, 2 passes, 1 lane): about 30 ms a hash here. */
const OPTIONS = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;
export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_LENGTH = 200;

/** Why a new password is refused (a sentence for the person choosing it), or null when acceptable. */
export function passwordProblem(password: string, email: string): string | null {
  if (password.length < MIN_PASSWORD_LENGTH)
    return `the password is too short: use at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > MAX_PASSWORD_LENGTH)
    return `the password is too long: use at most ${MAX_PASSWORD_LENGTH} characters`;
  if (password.trim().toLowerCase() === email.trim().toLowerCase())
    return 'the password must not be your email address';
  return null;
}

export const hashPassword = (password: string): Promise<string> => hash(password, OPTIONS);

/** Constant-time check of `password` against a stored argon2 hash; false on a malformed hash. */
export async function passwordMatches(storedHash: string, password: string): Promise<boolean> {
  try {
    return await verify(storedHash, password);
  } catch {
    return false;
  }
}

/** A hash to verify against when the user has none, so unknown emails take as long as wrong passwords. */
let dummy: Promise<string> | undefined;
export const dummyHash = (): Promise<string> => (dummy ??= hashPassword('runway-no-such-user-padding'));
