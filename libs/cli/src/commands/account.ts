import type { Command } from 'commander';
import { removeCredential, saveCredential } from '../credentials.js';
import { CliError } from '../instance.js';
import { boundWorkspace, client, resolveApiBase, type GlobalOptions } from '../session.js';
import { LocalWorkspace } from '../workspace/local.js';
import { printOut } from './print.js';

export function registerAccount(program: Command, g: () => GlobalOptions): void {
  program
    .command('login')
    .description('log in to Runway (device code approved by an owner, or --token) and bind this workspace')
    .option('--token <token>', 'use this API token instead of the device flow')
    .option('--timeout <seconds>', 'give up waiting for approval after this long', '900')
    .action(async (opts: { token?: string; timeout: string }) => {
      const ws = new LocalWorkspace();
      const apiBase = resolveApiBase(g(), ws);
      const timeout = Number(opts.timeout);
      if (!Number.isFinite(timeout) || timeout <= 0)
        throw new CliError(`--timeout ${opts.timeout}: expected a number of seconds`, 2);
      let token = opts.token ?? g().token;
      let email: string | undefined;
      if (!token) {
        const anon = client({ ...g(), token: undefined }, false, ws);
        const start = await anon.deviceCode();
        process.stderr.write(
          `To log in, approve the code ${start.user_code}\n  at ${start.verification_uri}\n  or run: runway admin device approve ${start.user_code}\n`,
        );
        const until = Date.now() + timeout * 1000;
        while (!token) {
          if (Date.now() > until) throw new CliError('login timed out waiting for approval');
          await new Promise((r) => setTimeout(r, Math.max(1, start.interval) * 1000));
          const res = await anon.deviceToken(start.device_code);
          if (res) {
            token = res.jwt;
            email = res.email;
          }
        }
      }
      const c = client({ ...g(), token }, true, ws);
      const me = await c.me();
      saveCredential(apiBase, token, me.email ?? email);
      ws.setRuntimeValue('api_base_url', apiBase);
      // A directory bound to a workspace this user has no access to on this server (another
      // server, a fresh install) is bound to the user's default workspace instead.
      const bound = ws.runtimeConfig().workspace_id;
      if (typeof bound === 'string' && bound && me.workspaces && !me.workspaces.some((w) => w.id === bound)) {
        ws.setRuntimeValue('workspace_id', me.default_workspace.id);
        process.stderr.write(
          `runway: workspace ${bound} from .dlt/config.toml is not one of yours on ${apiBase}: bound to ${me.default_workspace.name} (${me.default_workspace.id})\n`,
        );
      }
      const wsId = await boundWorkspace(c, ws);
      printOut(
        g(),
        { email: me.email, workspace_id: wsId, api_base_url: apiBase },
        () => `Logged in as ${me.email}\nAuthorized to workspace ${wsId}\n`,
      );
    });

  program
    .command('logout')
    .description('forget the saved credential for this API base')
    .action(() => {
      const apiBase = resolveApiBase(g());
      const removed = removeCredential(apiBase);
      printOut(g(), { logged_out: removed, api_base_url: apiBase }, () =>
        removed ? `Logged out of ${apiBase}\n` : `Not logged in to ${apiBase}\n`,
      );
    });
}
