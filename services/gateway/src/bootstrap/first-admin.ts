import type { INestApplicationContext } from '@nestjs/common';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { AggregateTypes, UserRegistered, WorkspaceCreated } from '#libs/contracts';
import { InstanceBootstrapped } from './instance.events.js';
import { CommandHandler, fold, GLOBAL_WORKSPACE, type AggregateRef, type EventStore } from '#libs/eventstore';
import type { RunningService } from '#libs/service-host';
import { CredentialsRepository } from '../session/credentials.repository.js';
import { SessionsService } from '../session/sessions.service.js';
import { UserHandler } from '../user/user.handler.js';
import { WorkspaceHandler } from '../workspace/workspace.handler.js';
import { instanceDecider, type InstanceIdentity } from './instance.decider.js';

const instanceSchema = z.object({ adminUserId: z.string().uuid(), defaultWorkspaceId: z.string().uuid() });
type InstanceFile = z.infer<typeof instanceSchema>;

export const FIRST_ADMIN_EMAIL = 'admin@runway.local';
const instanceRef: AggregateRef = {
  workspaceId: GLOBAL_WORKSPACE,
  type: AggregateTypes.instance,
  id: 'default',
};

export interface FirstAdmin {
  tokenFile: string;
  created: boolean;
  email: string;
  /** The first admin's dashboard password, while Runway made it and nobody changed it (else null). */
  passwordFile: string | null;
  adminUserId: string;
  defaultWorkspaceId: string;
}

/** What the event store recorded of the first start (null before it). */
async function recordedInstance(store: EventStore): Promise<InstanceIdentity | null> {
  const { events } = await store.read(instanceRef);
  const typed = events
    .filter((e) => e.type === InstanceBootstrapped.type)
    .map((e) => ({ type: InstanceBootstrapped.type, data: InstanceBootstrapped.schema.parse(e.data) }));
  return fold(instanceDecider, typed).bootstrapped;
}

/**
 * An instance bootstrapped before the first start was recorded on the event store: its first admin
 * (the oldest admin user) and the oldest workspace that admin owns. Read only when neither the
 * record nor `instance.json` exists.
 */
async function legacyInstance(store: EventStore): Promise<InstanceIdentity | null> {
  let admin: { userId: string; email: string } | undefined;
  for await (const c of store.replay({ aggregateType: AggregateTypes.user, types: [UserRegistered.type] })) {
    for (const e of c.events) {
      const d = UserRegistered.schema.parse(e.data);
      if (d.admin) admin ??= { userId: d.userId, email: d.email };
    }
  }
  if (!admin) return null;
  let workspaceId: string | undefined;
  for await (const c of store.replay({
    aggregateType: AggregateTypes.workspace,
    types: [WorkspaceCreated.type],
  })) {
    for (const e of c.events) {
      const d = WorkspaceCreated.schema.parse(e.data);
      if (d.ownerId === admin.userId) workspaceId ??= d.workspaceId;
    }
  }
  return {
    adminUserId: admin.userId,
    adminEmail: admin.email,
    defaultWorkspaceId: workspaceId ?? randomUUID(),
  };
}

function readInstanceFile(file: string): InstanceFile | undefined {
  return existsSync(file) ? instanceSchema.parse(JSON.parse(readFileSync(file, 'utf8'))) : undefined;
}

/**
 * On first start: the first admin (owner of the default workspace) and a token for them, written to
 * `<dataDir>/admin-token` with mode 0600. Whether the instance was bootstrapped is decided on the
 * event store (`evt._.instance.default`, appended with expected sequence 0), not by the data dir:
 * a lost `instance.json` is written again from that record, and no second admin is ever created,
 * even by several gateways starting at once. A deleted token file gets a new token.
 */
export async function ensureFirstAdmin(
  app: INestApplicationContext,
  service: RunningService,
): Promise<FirstAdmin> {
  const admin = await adminAndToken(app, service);
  const passwordFile = await ensureFirstPassword(app, service.ctx.config.dataDir, admin);
  return { ...admin, passwordFile };
}

/**
 * The first admin can sign in to the dashboard from the first start: while they have no password,
 * Runway makes one (argon2id-hashed like any other, never in events) and writes it to
 * `<dataDir>/admin-password` (mode 0600). Once anyone set a password, nothing is made again and the
 * file, if still there, may be stale: it is reported only while the stored hash matches it.
 */
async function ensureFirstPassword(
  app: INestApplicationContext,
  dataDir: string,
  admin: { adminUserId: string; email: string },
): Promise<string | null> {
  const file = join(dataDir, 'admin-password');
  const credentials = app.get(CredentialsRepository);
  if (await credentials.passwordHash(admin.adminUserId)) return existsSync(file) ? file : null;
  const password = randomBytes(18).toString('base64url');
  await app
    .get(SessionsService)
    .storePassword(admin.adminUserId, admin.email, password, { by: 'admin', actor: 'system' });
  writeFileSync(file, password + '\n', { mode: 0o600 });
  return file;
}

async function adminAndToken(
  app: INestApplicationContext,
  service: RunningService,
): Promise<Omit<FirstAdmin, 'passwordFile'>> {
  const dataDir = service.ctx.config.dataDir;
  const store = service.ctx.store;
  const tokenFile = join(dataDir, 'admin-token');
  const instanceFile = join(dataDir, 'instance.json');
  const users = app.get(UserHandler);
  const workspaces = app.get(WorkspaceHandler);
  const fromFile = readInstanceFile(instanceFile);

  let recorded = await recordedInstance(store);
  if (!recorded) {
    const candidate: InstanceIdentity = fromFile
      ? { ...fromFile, adminEmail: FIRST_ADMIN_EMAIL }
      : ((await legacyInstance(store)) ?? {
          adminUserId: randomUUID(),
          adminEmail: FIRST_ADMIN_EMAIL,
          defaultWorkspaceId: randomUUID(),
        });
    const r = await new CommandHandler(store, instanceDecider).handle(
      instanceRef,
      { type: 'BootstrapInstance', ...candidate },
      { commandId: `bootstrap-${candidate.adminUserId}`, actor: 'system' },
    );
    recorded = r.state.bootstrapped;
    if (!recorded) throw new Error('the instance bootstrap was not recorded');
  }
  const instance: InstanceFile = {
    adminUserId: recorded.adminUserId,
    defaultWorkspaceId: recorded.defaultWorkspaceId,
  };
  const fileMatches =
    fromFile?.adminUserId === instance.adminUserId &&
    fromFile.defaultWorkspaceId === instance.defaultWorkspaceId;
  const email = recorded.adminEmail;
  if (fileMatches && existsSync(tokenFile)) return { tokenFile, created: false, email, ...instance };

  // Finish the first start: each step is keyed by the recorded ids, so a start interrupted anywhere
  // (or racing another gateway) completes it without creating anything twice.
  let lastSeq = 0;
  if (!(await users.exists(instance.adminUserId))) {
    const r = await users.register(recorded.adminEmail, 'Admin', 'system', {
      admin: true,
      userId: instance.adminUserId,
    });
    lastSeq = Math.max(lastSeq, r.seq);
  }
  if (!(await workspaces.exists(instance.defaultWorkspaceId))) {
    const r = await workspaces.createWithId(instance.defaultWorkspaceId, 'default', instance.adminUserId, {
      commandId: `bootstrap-workspace-${instance.defaultWorkspaceId}`,
      actor: 'system',
    });
    lastSeq = Math.max(lastSeq, r.seq);
  }
  if (!fileMatches) writeFileSync(instanceFile, JSON.stringify(instance, null, 2) + '\n', { mode: 0o600 });
  if (existsSync(tokenFile)) {
    await Promise.all(service.runners.map((r) => r.waitFor(lastSeq, 30_000)));
    return { tokenFile, created: false, email, ...instance };
  }
  const issued = await users.issueToken(instance.adminUserId, 'admin', null, 'system');
  lastSeq = Math.max(lastSeq, issued.seq);
  // The token must work as soon as the file exists: wait for the read models.
  await Promise.all(service.runners.map((r) => r.waitFor(lastSeq, 30_000)));
  writeFileSync(tokenFile, issued.token + '\n', { mode: 0o600 });
  return { tokenFile, created: true, email, ...instance };
}
