import { z } from 'zod';

/** Request helpers shared by the REST controllers and the gRPC methods. */

/** `limit` / `offset` of every list (REST query, gRPC request). */
export const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

/** Path parameters: Express 5 hands a wildcard over as its segments. */
export function joinSegments(p: string | string[] | undefined): string[] {
  if (p === undefined) return [];
  return (Array.isArray(p) ? p : p.split('/')).filter((s) => s.length > 0);
}
