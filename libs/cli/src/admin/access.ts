import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunwayClient, type DeviceLogin } from '#libs/client';
import { roleSchema } from '#libs/contracts';
import { table } from '../output.js';
import { readPassword } from './password-input.js';
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
    .description('your tokens; with --all (or --user) every token of the instance (admins)')
    .option('--all', "every user's tokens")
    .option('--user <user>', 'the tokens of this user (email or id)')
    .option('--state <state>', 'active | revoked | expired')
    .action(async (o: { all?: boolean; user?: string; state?: string }) => {
      if (o.state && !['active', 'revoked', 'expired'].includes(o.state))
        throw new CliError(`--state ${o.state}: expected active, revoked or expired`, 2);
      const c = adminClient();
      const everyone = o.all || o.user !== undefined;
      const items = everyone
        ? (
            await c.listAllTokens({
              ...(o.user ? { user: o.user } : {}),
              ...(o.state ? { state: o.state } : {}),
            })
          ).items
        : (await c.listTokens()).items.filter((t) => !o.state || t.state === o.state);
      out(
        items,
        table(
          items.map((t) => ({
            id: t.id,
            ...('email' in t ? { user: t.email } : {}),
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
    .description('revoke a token (yours, or any for admins); it stops working at once, open log streams end')
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
    .option('--password', 'give them a dashboard password, typed at a prompt')
    .option('--password-stdin', 'give them a dashboard password, read from stdin')
    .action(
      async (
        email: string,
        o: { workspace?: string; role: string; password?: boolean; passwordStdin?: boolean },
      ) => {
        if (!roleSchema.safeParse(o.role).success)
          throw new CliError(`--role ${o.role}: expected owner, member or viewer`, 2);
        const password =
          o.password || o.passwordStdin ? await readPassword({ passwordStdin: o.passwordStdin }) : undefined;
        const u = await adminClient().createUser(
          email,
          o.workspace,
          o.workspace ? o.role : undefined,
          password,
        );
        out(u, `user ${u.email} created (${u.id})${password ? ' with a password' : ''}\n`);
      },
    );
  users
    .command('set-password <user>')
    .description(
      "set a user's dashboard password (email or id; typed at a prompt, or --password-stdin); their sessions end",
    )
    .option('--password-stdin', 'read the password from stdin')
    .action(async (user: string, o: { passwordStdin?: boolean }) => {
      const password = await readPassword({ passwordStdin: o.passwordStdin });
      const r = await adminClient().setUserPassword(user, password);
      out(r, `password of ${r.email} set: they can sign in to the dashboard\n`);
    });
  users
    .command('list')
    .description('every user, with whether they are disabled')
    .action(async () => {
      const page = await adminClient().listUsers();
      out(
        page.items,
        table(
          page.items.map((u) => ({
            id: u.id,
            email: u.email,
            admin: u.admin,
            disabled: u.disabled,
            created: u.date_added,
          })),
        ),
      );
    });
  users
    .command('disable <user>')
    .description('disable a user (email or id): their tokens stop working at once; nothing is deleted')
    .option('--reason <text>', 'why (kept in the event log)')
    .action(async (user: string, o: { reason?: string }) => {
      const u = await adminClient().disableUser(user, o.reason);
      out(u, `user ${u.email} disabled: their tokens no longer work\n`);
    });
  users
    .command('enable <user>')
    .description(
      'enable a disabled user again (their tokens that are neither revoked nor expired work again)',
    )
    .action(async (user: string) => {
      const u = await adminClient().enableUser(user);
      out(u, `user ${u.email} enabled\n`);
    });

  const device = admin.command('device').description('CLI logins waiting for approval');
  const checkCode = (code: string) => {
    if (!/^[A-Za-z]{4}-?[A-Za-z]{4}$/.test(code))
      throw new CliError(`${code}: a login code looks like ABCD-EFGH`, 2);
  };
  const who = (l: DeviceLogin) =>
    l.client
      ? `requested by ${l.client.user_agent} from ${l.client.ip} at ${l.client.requested_at}`
      : 'requested by an unknown client';
  device
    .command('show <code>')
    .description('which client asked for a pending login (user agent, IP, time)')
    .action(async (code: string) => {
      checkCode(code);
      const l = await adminClient().describeDevice(code);
      out(l, `${l.user_code} (${l.status}): ${who(l)}\n`);
    });
  device
    .command('approve <code>')
    .description(
      'approve a pending `runway login` / `dlt runtime login` (owners only; it logs in as the approving user)',
    )
    .action(async (code: string) => {
      checkCode(code);
      const r = await adminClient().approveDevice(code);
      out(r, `approved ${r.user_code} (${who(r)}): the CLI is now logged in as ${r.email}\n`);
    });
}
