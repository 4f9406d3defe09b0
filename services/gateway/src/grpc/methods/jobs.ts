/** gRPC methods of the job slice: list, read, upsert, delete. */

import { z } from 'zod';
import { parseInput } from '#libs/http';
import { jobMessage } from '../messages.js';
import { has, num, page, read, required, str, who, workspaceOf, write, type Method } from './common.js';

const upsertJob = z.object({
  name: z.string().min(1).max(500),
  description: z.string().max(10_000),
  entryPoint: z.string().min(1).max(1024),
  kind: z.enum(['batch', 'interactive']),
  active: z.boolean().optional(),
  profile: z.string().max(64).nullable().optional(),
  schedule: z.string().max(200).nullable().optional(),
  timeoutSeconds: z.number().int().nullable().optional(),
  timezone: z.string().min(1).max(100).optional(),
  missedPolicy: z.enum(['run_once', 'skip', 'run_all']).optional(),
  overlapPolicy: z.enum(['skip', 'queue', 'allow']).optional(),
});

export const jobsMethods: Record<string, Method> = {
  ListJobs: {
    auth: read,
    handle: async (s, r) => {
      const q = page(r);
      const p = await s.jobs.list(workspaceOf(r), q.limit, q.offset);
      const items = p.rows.map(({ job, lastRun }) =>
        jobMessage(job, s.publicUrl, lastRun ? { run: lastRun, job } : undefined),
      );
      return { items, ...q, total: p.total };
    },
  },
  GetJob: {
    auth: read,
    handle: async (s, r) => {
      const { job, lastRun } = await s.jobs.get(workspaceOf(r), required(r, 'id_or_name'));
      return jobMessage(job, s.publicUrl, lastRun ? { run: lastRun, job } : undefined);
    },
  },
  UpsertJob: {
    auth: write,
    handle: async (s, r, c) => {
      const input = parseInput(
        upsertJob,
        {
          name: str(r, 'name'),
          entryPoint: str(r, 'entry_point'),
          kind: str(r, 'kind') || 'batch',
          description: str(r, 'description'),
          ...(has(r, 'schedule') ? { schedule: str(r, 'schedule') || null } : {}),
          ...(has(r, 'profile') ? { profile: str(r, 'profile') || null } : {}),
          ...(has(r, 'active') ? { active: r.active === true } : {}),
          ...(has(r, 'timeout_seconds') ? { timeoutSeconds: num(r, 'timeout_seconds') || null } : {}),
          ...(has(r, 'timezone') ? { timezone: str(r, 'timezone') } : {}),
          ...(has(r, 'missed_policy') ? { missedPolicy: str(r, 'missed_policy') } : {}),
          ...(has(r, 'overlap_policy') ? { overlapPolicy: str(r, 'overlap_policy') } : {}),
        },
        'request',
      );
      return jobMessage(await s.jobs.upsert(who(c), workspaceOf(r), input), s.publicUrl);
    },
  },
  DeleteJob: {
    auth: write,
    handle: async (s, r, c) => {
      const job = await s.jobs.delete(who(c), workspaceOf(r), required(r, 'id_or_name'));
      return { id: job.id, name: job.name, deleted: true };
    },
  },
};
