import type { z } from 'zod';
import { badRequest } from './errors.js';

/** Parses an untrusted payload; a failure becomes a 400 naming each wrong field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what = 'request'): z.infer<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : what}: ${i.message}`);
  throw badRequest(`invalid ${what}: ${issues.join('; ')}`, { issues });
}
