/**
 * What every gRPC method is made of: the request and caller types, the gateway's application
 * services, the request-field readers (each refusing bad input with the REST route's 400) and
 * the authorization rules. The slices' method tables (`./<slice>.ts`) and `../methods.ts` build on it.
 */

import type { INestApplicationContext } from '@nestjs/common';
import { badRequest, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { AccountsService } from '../../account/accounts.service.js';
import { AlertsService } from '../../alert/alerts.service.js';
import type { AuthRule } from '../../auth/authenticated.decorator.js';
import type { Principal } from '../../auth/authenticator.js';
import { DeviceLoginService } from '../../auth/device-login.service.js';
import { ConfigurationsService } from '../../configuration/configurations.service.js';
import { DeploymentsService } from '../../deployment/deployments.service.js';
import { InteractiveService } from '../../interactive/interactive.service.js';
import { JobsService } from '../../job/jobs.service.js';
import { ManifestService } from '../../job/manifest.service.js';
import { LogsService } from '../../log/logs.service.js';
import { listQuery } from '../../page.js';
import { UploadQuota } from '../../quota/quota.interceptor.js';
import { RunsService } from '../../run/runs.service.js';
import { SessionsService } from '../../session/sessions.service.js';
import { WorkspacesService } from '../../workspace/workspaces.service.js';

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

export const str = (r: Req, field: string): string => {
  const v = r[field];
  return typeof v === 'string' ? v : '';
};
export const num = (r: Req, field: string): number => {
  const v = r[field];
  return typeof v === 'number' ? v : 0;
};
/** A repeated string field (at most 1000 values of at most 1000 characters). */
export const strs = (r: Req, field: string): string[] => {
  const v = r[field];
  const list = Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x.length > 0) : [];
  if (list.length > 1000 || list.some((x) => x.length > 1000))
    throw badRequest(`${field}: at most 1000 values of at most 1000 characters`);
  return list;
};
/** A required string field. */
export const required = (r: Req, field: string): string => {
  const v = str(r, field);
  if (!v) throw badRequest(`${field} is required`);
  return v;
};
/** Whether an `optional` proto3 field was set (proto-loader with oneofs: the synthetic `_field` oneof). */
export const has = (r: Req, field: string) =>
  r[`_${field}`] === field || (r[field] !== undefined && r[field] !== null && !(`_${field}` in r));
/** The workspace a method names (its authorization already checked it). */
export const workspaceOf = (r: Req): string => str(r, 'workspace_id');
export const page = (r: Req) =>
  parseInput(
    listQuery,
    { limit: num(r, 'limit') || undefined, offset: num(r, 'offset') || undefined },
    'request',
  );
export const who = (c: Caller | undefined): Principal => {
  if (!c) throw new Error('method reached without authentication');
  return c.principal;
};
export const bytes = (r: Req): Buffer => {
  const v = r.package;
  return Buffer.from(v instanceof Uint8Array ? v : new Uint8Array());
};

export const read: AuthRule = { workspace: 'read' };
export const write: AuthRule = { workspace: 'write' };
export const owner: AuthRule = { workspace: 'owner' };
export const admin: AuthRule = { admin: true };
export const anyone: AuthRule = {};
