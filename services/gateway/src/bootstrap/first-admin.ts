import type { INestApplicationContext } from '@nestjs/common';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { RunningService } from '#libs/service-host';
import { UserHandler } from '../user/user.handler.js';
import { WorkspaceHandler } from '../workspace/workspace.handler.js';

const instanceSchema = z.object({ adminUserId: z.string().uuid(), defaultWorkspaceId: z.string().uuid() });

export interface FirstAdmin {
  tokenFile: string;
  created: boolean;
  adminUserId: string;
  defaultWorkspaceId: string;
}

/**
 * On first start: the first admin (owner of the default workspace) and a token for them, written to
 * `<dataDir>/admin-token` with mode 0600. Later starts keep both; a deleted token file gets a new token.
 */
export async function ensureFirstAdmin(
  app: INestApplicationContext,
  service: RunningService,
): Promise<FirstAdmin> {
  const dataDir = service.ctx.config.dataDir;
  const tokenFile = join(dataDir, 'admin-token');
  const instanceFile = join(dataDir, 'instance.json');
  const users = app.get(UserHandler);
  const workspaces = app.get(WorkspaceHandler);
  let instance = existsSync(instanceFile)
    ? instanceSchema.parse(JSON.parse(readFileSync(instanceFile, 'utf8')))
    : undefined;
  if (instance && existsSync(tokenFile)) return { tokenFile, created: false, ...instance };
  let lastSeq = 0;
  if (!instance) {
    const { userId, seq } = await users.register('admin@runway.local', 'Admin', 'system', true);
    const ws = await workspaces.create('default', userId, { actor: 'system' });
    lastSeq = Math.max(seq, ws.seq);
    instance = { adminUserId: userId, defaultWorkspaceId: ws.workspaceId };
    writeFileSync(instanceFile, JSON.stringify(instance, null, 2) + '\n', { mode: 0o600 });
  }
  const issued = await users.issueToken(instance.adminUserId, 'admin', null, 'system');
  lastSeq = Math.max(lastSeq, issued.seq);
  // The token must work as soon as the file exists: wait for the read models.
  await Promise.all(service.runners.map((r) => r.waitFor(lastSeq, 30_000)));
  writeFileSync(tokenFile, issued.token + '\n', { mode: 0o600 });
  return { tokenFile, created: true, ...instance };
}
