/** gRPC methods of the run slice: list, read, request, cancel, logs. */

import { z } from 'zod';
import { runStatusSchema } from '#libs/contracts';
import { badRequest, parseInput } from '#libs/http';
import { parseApiToken } from '../../auth/tokens.js';
import { traceMessage } from '../../run/telemetry.js';
import { runMessage } from '../messages.js';
import { page, read, required, str, strs, who, workspaceOf, write, type Method } from './common.js';

export const runsMethods: Record<string, Method> = {
  ListRuns: {
    auth: read,
    handle: async (s, r) => {
      const q = page(r);
      const filter = parseInput(
        z.object({ jobId: z.string().uuid().optional(), status: runStatusSchema.optional() }),
        {
          ...(str(r, 'job_id') ? { jobId: str(r, 'job_id').toLowerCase() } : {}),
          ...(str(r, 'status') ? { status: str(r, 'status') } : {}),
        },
        'request',
      );
      const p = await s.runs.list(workspaceOf(r), filter, q.limit, q.offset);
      return { items: p.rows.map((x) => runMessage(x, s.publicUrl)), ...q, total: p.total };
    },
  },
  GetRun: {
    auth: read,
    handle: async (s, r) => {
      const {
        timeline,
        pipelines: _pipelines,
        telemetry,
        ...of
      } = await s.runs.details(workspaceOf(r), required(r, 'run_id'));
      return {
        ...runMessage(of, s.publicUrl),
        traces: telemetry.traces.map(traceMessage),
        status_timeline: timeline.map((t) => ({
          status: t.status,
          at: t.at.toISOString(),
          reason: t.reason,
        })),
      };
    },
  },
  RequestRun: {
    auth: write,
    handle: async (s, r, c) => {
      const run = await s.runs.requestRun(who(c), workspaceOf(r), {
        jobIdOrName: required(r, 'job_id_or_name'),
        profile: str(r, 'profile') || null,
        trigger: parseApiToken(c?.token ?? '') ? 'api' : 'manual',
      });
      return runMessage(run, s.publicUrl);
    },
  },
  CancelRun: {
    auth: write,
    handle: async (s, r, c) =>
      runMessage(await s.runs.cancel(who(c), workspaceOf(r), required(r, 'run_id')), s.publicUrl),
  },
  CancelActiveRuns: {
    auth: write,
    handle: async (s, r, c) => {
      const refs = strs(r, 'job_refs');
      if (refs.length === 0) throw badRequest('job_refs is required');
      const res = await s.runs.cancelActiveRuns(who(c), workspaceOf(r), refs, r.dry_run === true);
      return {
        cancelled: res.cancelled.map((x) => ({
          job_ref: x.jobRef,
          previous_status: x.previousStatus,
          run_id: x.runId,
          run_number: x.runNumber,
        })),
        not_running: res.notRunning,
      };
    },
  },
  GetRunLogs: {
    auth: read,
    handle: async (s, r) => {
      const of = await s.runs.get(workspaceOf(r), required(r, 'run_id'));
      const log = await s.logs.text(workspaceOf(r), of.run);
      return { run: runMessage(of, s.publicUrl), logs: log?.text.replace(/\n$/, '') ?? '' };
    },
  },
};
