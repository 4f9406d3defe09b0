import type { Command } from 'commander';
import { roleSchema } from '#libs/contracts';
import { CliError } from '../instance.js';
import { table } from '../output.js';
import { client, openSession, type GlobalOptions } from '../session.js';
import { printOut } from './print.js';

/** The workspace to act on: --workspace, else the one this directory is bound to. */
async function target(g: GlobalOptions, workspace: string | undefined) {
  if (workspace) return { c: client(g), wsId: workspace };
  const { c, wsId } = await openSession(g);
  return { c, wsId };
}

/** `runway workspace members list | add <email> --role <role> | set-role <user> <role> | remove <user>` (owners change members). */
export function registerWorkspace(program: Command, g: () => GlobalOptions): void {
  const workspace = program.command('workspace').description('the workspace this directory is bound to');
  const members = workspace
    .command('members')
    .description('members of the workspace: list | add <email> | set-role <user> <role> | remove <user>');
  const ws = (o: { workspace?: string }) => target(g(), o.workspace);
  members
    .command('list')
    .description('members and their roles')
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (o: { workspace?: string }) => {
      const { c, wsId } = await ws(o);
      const rows = await c.listMembers(wsId);
      printOut(g(), rows, () =>
        table(rows.map((m) => ({ email: m.email, role: m.role, user_id: m.user_id, added: m.date_added }))),
      );
    });
  members
    .command('add <email>')
    .description('add a user (they must exist: `runway admin users create`) or change their role (owners)')
    .option('--role <role>', 'owner | member | viewer', 'member')
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (email: string, o: { role: string; workspace?: string }) => {
      if (!roleSchema.safeParse(o.role).success)
        throw new CliError(`--role ${o.role}: expected owner, member or viewer`, 2);
      const { c, wsId } = await ws(o);
      const m = await c.addMember(wsId, email, o.role);
      printOut(g(), m, () => `${m.email} is now ${m.role} of workspace ${wsId}\n`);
    });
  members
    .command('set-role <user> <role>')
    .description("change a member's role (owners; by email or user id; never demoting the last owner)")
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (user: string, role: string, o: { workspace?: string }) => {
      if (!roleSchema.safeParse(role).success)
        throw new CliError(`${role}: expected owner, member or viewer`, 2);
      const { c, wsId } = await ws(o);
      const m = await c.changeMemberRole(wsId, user, role);
      printOut(g(), m, () => `${m.email} is now ${m.role} of workspace ${wsId}\n`);
    });
  members
    .command('remove <user>')
    .description('remove a member (owners; you may remove yourself; never the last owner)')
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (user: string, o: { workspace?: string }) => {
      const { c, wsId } = await ws(o);
      const r = await c.removeMember(wsId, user);
      printOut(g(), r, () => `${r.email} removed from workspace ${wsId}: their access to it ended\n`);
    });
}
