import { z } from 'zod';

/** `limit` / `offset` of every list (REST query, gRPC request). */
export const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
