import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunwayClient } from '#libs/client';
import { roleSchema } from '#libs/contracts';
import { table } from '../output.js';
import { CliError, findInstance } from '../instance.js';

/** The local instance's API, authenticated with the first admin's token from the data dir (or RUNWAY_TOKEN). */
function adminClient(): RunwayClient {
  const inst = findInstance();
  const file = join(inst.config.dataDir, 'admin-token');
  const token =
    process.env.RUNWAY_TOKEN ?? (existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined);
  if (!token)
    throw new CliError(
      `no admin token: ${file} does not exist (is RUNWAY_DATA_DIR right?) and RUNWAY_TOKEN is not set`,
    );
  return new RunwayClient({ apiBase: `http://127.0.0.1:${inst.config.http.port}/api`, token });
}

function days(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)(d)?$/.exec(v);
  if (!m || Number(m[1]) <= 0)
    throw new CliError(`--expires-in ${v}: expected a number of days, e.g. 30d`, 2);
  return Number(m[1]);
}

export function registerAccess(admin: Command, json: () => boolean): void {
  const out = (data: unknown, human: string) =>
    process.stdout.write(json() ? JSON.stringify(data, null, 2) + '\n' : human);
  const tokens = admin.command('tokens').description('API tokens (stored hashed; shown once)');
  tokens
    .command('create')
    .description('create a token (for yourself, or for --user <email|id>)')
    .option('--name <name>', 'a label', 'cli')
    .option('--user <user>', 'issue it for this user (admins only)')
    .option('--expires-in <days>', 'expire after N days, e.g. 30d')
    .action(async (o: { name: string; user?: string; expiresIn?: string }) => {
      const c = adminClient();
      const t = o.user
        ? await c.createTokenFor(o.user, o.name, days(o.expiresIn))
        : await c.createToken(o.name, days(o.expiresIn));
      out(t, `${t.token}\n`);
      if (!json())
        process.stderr.write(
          `token ${t.id} created${t.expires_at ? `, expires ${t.expires_at}` : ''}: store it now, it is not shown again\n`,
        );
    });
  tokens
    .command('list')
    .description('your tokens')
    .action(async () => {
      const page = await adminClient().listTokens();
      out(
        page.items,
        table(
          page.items.map((t) => ({
            id: t.id,
            name: t.name,
            state: t.state,
            created: t.date_added,
            expires: t.expires_at ?? 'never',
          })),
        ),
      );
    });
  tokens
    .command('revoke <id>')
    .description('revoke a token; it stops working at once')
    .action(async (id: string) => {
      const t = await adminClient().revokeToken(id);
      out(t, `token ${t.id} revoked\n`);
    });

  const users = admin.command('users').description('users of this instance');
  users
    .command('create <email>')
    .description('add a user, optionally as a member of a workspace')
    .option('--workspace <id>', 'add them to this workspace')
    .option('--role <role>', 'owner | member | viewer', 'member')
    .action(async (email: string, o: { workspace?: string; role: string }) => {
      if (!roleSchema.safeParse(o.role).success)
        throw new CliError(`--role ${o.role}: expected owner, member or viewer`, 2);
      const u = await adminClient().createUser(email, o.workspace, o.workspace ? o.role : undefined);
      out(u, `user ${u.email} created (${u.id})\n`);
    });
  users.command('list').action(async () => {
    const page = await adminClient().listUsers();
    out(
      page.items,
      table(page.items.map((u) => ({ id: u.id, email: u.email, admin: u.admin, created: u.date_added }))),
    );
  });

  admin
    .command('device')
    .description('CLI logins waiting for approval')
    .command('approve <code>')
    .description('approve a pending `runway login` / `dlt runtime login` (it logs in as the approving user)')
    .action(async (code: string) => {
      if (!/^[A-Za-z]{4}-?[A-Za-z]{4}$/.test(code))
        throw new CliError(`${code}: a login code looks like ABCD-EFGH`, 2);
      const r = await adminClient().approveDevice(code);
      out(r, `approved ${code.toUpperCase()}: the CLI is now logged in as ${r.email}\n`);
    });
}
