import type { INestApplicationContext } from '@nestjs/common';
import { z } from 'zod';
import { runStatusSchema, type ManifestOutcomeJob } from '#libs/contracts';
import { badRequest, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { AccountsService } from '../account/accounts.service.js';
import {
  alertRuleBody,
  toAlertDeliveryResponse,
  toAlertRuleResponse,
  toDraft,
} from '../alert/alerts.controller.js';
import { AlertsService } from '../alert/alerts.service.js';
import {
  allTokensQuery,
  createTokenBody,
  createUserBody,
  disableBody,
} from '../account/tokens.controller.js';
import type { AuthRule } from '../auth/authenticated.decorator.js';
import type { Principal } from '../auth/authenticator.js';
import { DeviceLoginService } from '../auth/device-login.service.js';
import { parseApiToken } from '../auth/tokens.js';
import { toConfigurationResponse } from '../configuration/configuration.controller.js';
import { ConfigurationsService } from '../configuration/configurations.service.js';
import { toDeploymentResponse } from '../deployment/deployment.controller.js';
import { DeploymentsService } from '../deployment/deployments.service.js';
import { InteractiveService } from '../interactive/interactive.service.js';
import { publicLinkBody, toPublicLinkResponse } from '../interactive/public-links.controller.js';
import { JobsService } from '../job/jobs.service.js';
import { ManifestService } from '../job/manifest.service.js';
import { toWebhookResponse, webhookBody } from '../job/webhooks.controller.js';
import { backfillBody, backfillResponse, deployManifestBody } from '../job/manifest.controller.js';
import type { BackfillResult } from '../job/manifest.service.js';
import { LogsService } from '../log/logs.service.js';
import { listQuery } from '../page.js';
import { UploadQuota } from '../quota/quota.interceptor.js';
import { RunsService } from '../run/runs.service.js';
import { memberBody, roleBody } from '../workspace/workspace.controller.js';
import { changePasswordBody, setPasswordBody } from '../session/session.controller.js';
import { SessionsService } from '../session/sessions.service.js';
import { WorkspacesService } from '../workspace/workspaces.service.js';
import { jobMessage, runMessage } from './messages.js';
import { traceMessage } from '../run/telemetry.js';

/** A request message as proto-loader decodes it (defaults filled in, oneofs as fields). */
export type Req = Record<string, unknown>;

/** What a handler gets besides the request: the caller and their raw credential. */
export interface Caller {
  principal: Principal;
  token: string;
}

/** The gateway's application services, resolved once from the Nest application. */
export class Services {
  readonly jobs: JobsService;
  readonly manifest: ManifestService;
  readonly runs: RunsService;
  readonly logs: LogsService;
  readonly deployments: DeploymentsService;
  readonly configurations: ConfigurationsService;
  readonly workspaces: WorkspacesService;
  readonly accounts: AccountsService;
  readonly logins: DeviceLoginService;
  readonly sessions: SessionsService;
  readonly uploads: UploadQuota;
  readonly publicUrl: string;
  readonly alerts: AlertsService;
  readonly interactive: InteractiveService;

  constructor(app: INestApplicationContext) {
    this.interactive = app.get(InteractiveService);
    this.alerts = app.get(AlertsService);
    this.jobs = app.get(JobsService);
    this.manifest = app.get(ManifestService);
    this.runs = app.get(RunsService);
    this.logs = app.get(LogsService);
    this.deployments = app.get(DeploymentsService);
    this.configurations = app.get(ConfigurationsService);
    this.workspaces = app.get(WorkspacesService);
    this.accounts = app.get(AccountsService);
    this.logins = app.get(DeviceLoginService);
    this.sessions = app.get(SessionsService);
    this.uploads = app.get(UploadQuota);
    this.publicUrl = app.get<ServiceContext>(SERVICE_CONTEXT).config.publicUrl;
  }
}

/** A gRPC method: who may call it (as @Authenticated on a REST route) and what it does. */
export interface Method {
  /** 'public': no credential; otherwise a valid credential plus this rule. */
  auth: AuthRule | 'public';
  handle: (s: Services, req: Req, caller: Caller | undefined) => Promise<unknown>;
}

const str = (r: Req, field: string): string => {
  const v = r[field];
  return typeof v === 'string' ? v : '';
};
const num = (r: Req, field: string): number => {
  const v = r[field];
  return typeof v === 'number' ? v : 0;
};
/** A repeated string field (at most 1000 values of at most 1000 characters). */
const strs = (r: Req, field: string): string[] => {
  const v = r[field];
  const list = Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x.length > 0) : [];
  if (list.length > 1000 || list.some((x) => x.length > 1000))
    throw badRequest(`${field}: at most 1000 values of at most 1000 characters`);
  return list;
};
/** A required string field. */
const required = (r: Req, field: string): string => {
  const v = str(r, field);
  if (!v) throw badRequest(`${field} is required`);
  return v;
};
/** Whether an `optional` proto3 field was set (proto-loader with oneofs: the synthetic `_field` oneof). */
const has = (r: Req, field: string) =>
  r[`_${field}`] === field || (r[field] !== undefined && r[field] !== null && !(`_${field}` in r));
/** The workspace a method names (its authorization already checked it). */
export const workspaceOf = (r: Req): string => str(r, 'workspace_id');
const page = (r: Req) =>
  parseInput(
    listQuery,
    { limit: num(r, 'limit') || undefined, offset: num(r, 'offset') || undefined },
    'request',
  );
const who = (c: Caller | undefined): Principal => {
  if (!c) throw new Error('method reached without authentication');
  return c.principal;
};
const bytes = (r: Req): Buffer => {
  const v = r.package;
  return Buffer.from(v instanceof Uint8Array ? v : new Uint8Array());
};

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

const read: AuthRule = { workspace: 'read' };
const write: AuthRule = { workspace: 'write' };
const owner: AuthRule = { workspace: 'owner' };
const admin: AuthRule = { admin: true };
const anyone: AuthRule = {};

/**
 * Every unary method of runway.proto with its authorization, declared once here (REST routes
 * declare theirs with @Authenticated), each calling the same application service as its REST route.
 */
export const METHODS: Record<string, Method> = {
  Ping: { auth: 'public', handle: () => Promise.resolve({ message: 'pong', service: 'api' }) },
  Me: { auth: anyone, handle: (s, _r, c) => s.accounts.me(who(c)) },

  ListDeployments: {
    auth: read,
    handle: async (s, r) => {
      const q = page(r);
      const { rows, total } = await s.deployments.list(workspaceOf(r), q.limit, q.offset);
      return { items: rows.map(toDeploymentResponse), ...q, total };
    },
  },
  GetDeployment: {
    auth: read,
    handle: async (s, r) =>
      toDeploymentResponse(await s.deployments.resolve(workspaceOf(r), str(r, 'id_or_version') || 'latest')),
  },
  CreateDeployment: {
    auth: write,
    handle: async (s, r, c) => {
      const release = s.uploads.acquire(workspaceOf(r));
      try {
        const { row } = await s.deployments.fromArchive(who(c), workspaceOf(r), bytes(r), undefined);
        return toDeploymentResponse(row);
      } finally {
        release();
      }
    },
  },

  ListConfigurations: {
    auth: read,
    handle: async (s, r) => {
      const q = page(r);
      const { rows, total } = await s.configurations.list(workspaceOf(r), q.limit, q.offset);
      return { items: rows.map(toConfigurationResponse), ...q, total };
    },
  },
  GetConfiguration: {
    auth: read,
    handle: async (s, r) =>
      toConfigurationResponse(
        await s.configurations.resolve(workspaceOf(r), str(r, 'id_or_version') || 'latest'),
      ),
  },
  CreateConfiguration: {
    auth: write,
    handle: async (s, r, c) => {
      const release = s.uploads.acquire(workspaceOf(r));
      try {
        return toConfigurationResponse(
          await s.configurations.upload(who(c), workspaceOf(r), bytes(r), false, undefined),
        );
      } finally {
        release();
      }
    },
  },

  ListTokens: { auth: anyone, handle: (s, _r, c) => s.accounts.myTokens(who(c)) },
  CreateToken: {
    auth: anyone,
    handle: (s, r, c) =>
      s.accounts.issueOwnToken(
        who(c),
        parseInput(
          createTokenBody,
          {
            name: str(r, 'name'),
            ...(num(r, 'expires_in_days') ? { expires_in_days: num(r, 'expires_in_days') } : {}),
          },
          'request',
        ),
      ),
  },
  RevokeToken: { auth: anyone, handle: (s, r, c) => s.accounts.revokeToken(who(c), str(r, 'id')) },

  ListAllTokens: {
    auth: admin,
    handle: (s, r, c) =>
      s.accounts.allTokens(
        who(c),
        parseInput(
          allTokensQuery,
          {
            ...(str(r, 'user') ? { user: str(r, 'user') } : {}),
            ...(str(r, 'state') ? { state: str(r, 'state') } : {}),
          },
          'request',
        ),
      ),
  },
  ListUsers: { auth: admin, handle: (s) => s.accounts.listUsers() },
  CreateUser: {
    auth: admin,
    handle: (s, r, c) =>
      s.accounts.createUser(
        who(c),
        parseInput(
          createUserBody,
          {
            email: str(r, 'email'),
            ...(str(r, 'name') ? { name: str(r, 'name') } : {}),
            ...(str(r, 'workspace_id') ? { workspace_id: str(r, 'workspace_id') } : {}),
            ...(str(r, 'role') ? { role: str(r, 'role') } : {}),
          },
          'request',
        ),
      ),
  },
  DisableUser: {
    auth: admin,
    handle: (s, r, c) =>
      s.accounts.disableUser(
        who(c),
        required(r, 'user'),
        parseInput(disableBody, str(r, 'reason') ? { reason: str(r, 'reason') } : {}, 'request').reason,
      ),
  },
  EnableUser: { auth: admin, handle: (s, r, c) => s.accounts.enableUser(who(c), required(r, 'user')) },

  ListMembers: {
    auth: read,
    handle: async (s, r) => ({ items: await s.workspaces.members(workspaceOf(r)) }),
  },
  AddMember: {
    auth: owner,
    handle: (s, r, c) =>
      s.workspaces.addMember(
        who(c),
        workspaceOf(r),
        parseInput(memberBody, { email: str(r, 'email'), role: str(r, 'role') || 'member' }, 'request'),
      ),
  },
  RemoveMember: {
    auth: { workspace: 'owner', selfNeeds: 'read' },
    handle: (s, r, c) => s.workspaces.removeMember(who(c), workspaceOf(r), required(r, 'user')),
  },
  GetDeviceLogin: { auth: anyone, handle: (s, r, c) => s.logins.show(who(c), required(r, 'user_code')) },
  ApproveDeviceLogin: {
    auth: anyone,
    handle: (s, r, c) => s.logins.approve(who(c), required(r, 'user_code')),
  },
  ChangeMemberRole: {
    auth: owner,
    handle: (s, r, c) =>
      s.workspaces.changeRole(
        who(c),
        workspaceOf(r),
        required(r, 'user'),
        parseInput(roleBody, { role: str(r, 'role') }, 'request').role,
      ),
  },
  DenyDeviceLogin: { auth: anyone, handle: (s, r, c) => s.logins.deny(who(c), required(r, 'user_code')) },
  ListMySessions: { auth: anyone, handle: (s, _r, c) => s.sessions.list(who(c)) },
  RevokeMySession: { auth: anyone, handle: (s, r, c) => s.sessions.revoke(who(c), required(r, 'id')) },
  ChangeMyPassword: {
    auth: anyone,
    handle: (s, r, c) => {
      const input = parseInput(
        changePasswordBody,
        { current: str(r, 'current'), new: str(r, 'new') },
        'request',
      );
      return s.sessions.changePassword(who(c), input.current, input.new, { userAgent: 'grpc', ip: 'grpc' });
    },
  },
  SetUserPassword: {
    auth: admin,
    handle: (s, r, c) =>
      s.sessions.setPassword(
        who(c),
        required(r, 'user'),
        parseInput(setPasswordBody, { password: str(r, 'password') }, 'request').password,
      ),
  },

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
  ChangePublicLink: {
    auth: write,
    handle: async (s, r, c) => {
      const b = parseInput(
        publicLinkBody,
        { job: str(r, 'id_or_name'), action: str(r, 'action') || 'enable' },
        'request',
      );
      const out = toPublicLinkResponse(
        await s.interactive.changePublicLink(who(c), workspaceOf(r), b.job, b.action),
      );
      return { ...out, public_url: out.public_url ?? '' };
    },
  },
  ChangeWebhook: {
    auth: write,
    handle: async (s, r, c) => {
      const b = parseInput(webhookBody, { action: str(r, 'action') || 'enable' }, 'request');
      const out = toWebhookResponse(
        await s.manifest.changeWebhook(who(c), workspaceOf(r), required(r, 'id_or_name'), b.action),
      );
      return { ...out, webhook_url: out.webhook_url ?? '' };
    },
  },
  DeleteJob: {
    auth: write,
    handle: async (s, r, c) => {
      const job = await s.jobs.delete(who(c), workspaceOf(r), required(r, 'id_or_name'));
      return { id: job.id, name: job.name, deleted: true };
    },
  },

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
  TriggerJobs: {
    auth: write,
    handle: async (s, r, c) => {
      const jobRefs = strs(r, 'job_refs');
      const selectors = strs(r, 'selectors');
      if (jobRefs.length + selectors.length === 0) throw badRequest('give job_refs or selectors');
      const reply = await s.manifest.trigger(who(c), workspaceOf(r), {
        jobRefs,
        selectors,
        profile: str(r, 'profile') || null,
        refresh: r.refresh === true,
        dryRun: r.dry_run === true,
      });
      return {
        triggered: reply.triggered.map((t) => ({
          job_ref: t.jobRef,
          job_id: t.jobId,
          matched_triggers: t.matchedTriggers,
          trigger: t.trigger,
          status: t.status,
          run_id: t.runId ?? '',
          reason: t.reason ?? '',
        })),
      };
    },
  },
  DeployManifest: {
    auth: write,
    handle: async (s, r, c) => {
      let jobs: unknown;
      try {
        jobs = JSON.parse(str(r, 'jobs_json') || '[]');
      } catch {
        throw badRequest('jobs_json: not JSON');
      }
      const b = parseInput(
        deployManifestBody,
        {
          job_definition_engine_version: num(r, 'engine_version'),
          job_definition_hash: str(r, 'definition_hash'),
          jobs,
          deployment_module: str(r, 'deployment_module') || null,
          dry_run: r.dry_run === true,
        },
        'request',
      );
      const { reply } = await s.manifest.deploy(who(c), workspaceOf(r), {
        engineVersion: b.job_definition_engine_version,
        definitionHash: b.job_definition_hash,
        deploymentModule: b.deployment_module ?? null,
        jobs: b.jobs,
        dryRun: b.dry_run ?? false,
      });
      const out = (outcome: string) => (o: ManifestOutcomeJob) => ({
        job_id: o.jobId,
        job_ref: o.jobRef,
        version: o.version,
        previous_version: o.previousVersion ?? 0,
        outcome,
      });
      return {
        jobs: [
          ...reply.added.map(out('added')),
          ...reply.updated.map(out('updated')),
          ...reply.unchanged.map(out('unchanged')),
          ...reply.archived.map(out('archived')),
        ],
        warnings: reply.warnings,
      };
    },
  },
  StartBackfill: {
    auth: write,
    handle: async (s, r, c) => {
      const b = parseInput(
        backfillBody,
        { from: str(r, 'from'), to: str(r, 'to'), reprocess: r.reprocess === true },
        'request',
      );
      return backfillMessage(await s.manifest.backfill(who(c), workspaceOf(r), required(r, 'id_or_name'), b));
    },
  },
  GetBackfill: {
    auth: read,
    handle: async (s, r, c) =>
      backfillMessage(await s.manifest.getBackfill(who(c), workspaceOf(r), required(r, 'backfill_id'))),
  },
  CancelBackfill: {
    auth: write,
    handle: async (s, r, c) =>
      backfillMessage(
        await s.manifest.changeBackfill(who(c), workspaceOf(r), required(r, 'backfill_id'), 'cancel'),
      ),
  },
  ResumeBackfill: {
    auth: write,
    handle: async (s, r, c) =>
      backfillMessage(
        await s.manifest.changeBackfill(who(c), workspaceOf(r), required(r, 'backfill_id'), 'resume'),
      ),
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
  ListAlertRules: {
    auth: read,
    handle: async (s, r) => ({ items: (await s.alerts.listRules(workspaceOf(r))).map(alertRuleMessage) }),
  },
  CreateAlertRule: {
    auth: write,
    handle: async (s, r, c) => {
      const rate = r.rate_limit;
      const emails = Array.isArray(r.email_to) ? r.email_to.filter((e) => typeof e === 'string') : [];
      const body = parseInput(
        alertRuleBody,
        {
          name: str(r, 'name'),
          job: str(r, 'job') || null,
          conditions: Array.isArray(r.conditions) ? r.conditions : [],
          ...(has(r, 'failures_in_row') ? { failures_in_row: num(r, 'failures_in_row') } : {}),
          webhook_url: str(r, 'webhook_url') || null,
          email_to: emails.length > 0 ? emails : null,
          ...(rate && typeof rate === 'object' && 'max' in rate && 'window_seconds' in rate
            ? { rate_limit: { max: rate.max, window_seconds: rate.window_seconds } }
            : {}),
        },
        'request',
      );
      const { rule, webhookSecret } = await s.alerts.createRule(who(c), workspaceOf(r), toDraft(body));
      return { ...alertRuleMessage(rule), webhook_secret: webhookSecret ?? '' };
    },
  },
  DeleteAlertRule: {
    auth: write,
    handle: async (s, r, c) => {
      const rule = await s.alerts.deleteRule(who(c), workspaceOf(r), required(r, 'rule_id'));
      return { id: rule.rule_id, deleted: true };
    },
  },
  TestAlertRule: {
    auth: write,
    handle: async (s, r, c) => ({
      alert_id: await s.alerts.testFire(who(c), workspaceOf(r), required(r, 'rule_id')),
    }),
  },
  ListAlertDeliveries: {
    auth: read,
    handle: async (s, r) => {
      const q = parseInput(
        z.object({
          status: z.enum(['pending', 'delivered', 'dead']).optional(),
          ruleId: z.string().uuid().optional(),
          limit: z.number().int().min(1).max(1000).default(100),
        }),
        {
          ...(str(r, 'status') ? { status: str(r, 'status') } : {}),
          ...(str(r, 'rule_id') ? { ruleId: str(r, 'rule_id') } : {}),
          ...(num(r, 'limit') ? { limit: num(r, 'limit') } : {}),
        },
        'request',
      );
      const rows = await s.alerts.listDeliveries(workspaceOf(r), q);
      return {
        items: rows.map(toAlertDeliveryResponse).map((d) => ({
          ...d,
          run_id: d.run_id ?? '',
          job_name: d.job_name ?? '',
          last_error: d.last_error ?? '',
        })),
      };
    },
  },
};

/** An alert rule as runway.proto says it (no secret: only CreateAlertRule adds it). */
function alertRuleMessage(rule: Parameters<typeof toAlertRuleResponse>[0]) {
  const r = toAlertRuleResponse(rule);
  return {
    ...r,
    job_id: r.job_id ?? '',
    job_name: r.job_name ?? '',
    webhook_url: r.webhook_url ?? '',
    email_to: r.email_to ?? [],
  };
}

/** FollowRunLogs (server streaming) is authorized like a read. */
export const FOLLOW_AUTH: AuthRule = read;

/** A backfill as the gRPC `Backfill` message (the REST answer's fields, "" for null). */
function backfillMessage(result: BackfillResult) {
  const b = backfillResponse(result);
  return {
    backfill_id: b.backfill_id,
    job_id: b.job_id,
    job_ref: b.job_ref ?? '',
    from: b.from,
    to: b.to,
    mode: b.mode,
    concurrency: b.concurrency,
    status: b.status,
    reason: b.reason ?? '',
    skipped_done: b.skipped_done,
    slices: b.slices.map((x) => ({ ...x, run_id: x.run_id ?? '' })),
    ...b.progress,
  };
}
