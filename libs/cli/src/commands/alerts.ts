import type { Command } from 'commander';
import { alertConditionNames } from '#libs/contracts';
import { CliError } from '../instance.js';
import { table } from '../output.js';
import { client, openSession, type GlobalOptions } from '../session.js';
import { printOut } from './print.js';

async function target(g: GlobalOptions, workspace: string | undefined) {
  if (workspace) return { c: client(g), wsId: workspace };
  const { c, wsId } = await openSession(g);
  return { c, wsId };
}

const CONDITIONS: readonly string[] = alertConditionNames;
const positive = (flag: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${flag} ${v}: expected a whole number ≥ 1`, 2);
  return n;
};

interface CreateOptions {
  job?: string;
  on: string;
  webhook?: string;
  email?: string[];
  failuresInRow?: string;
  rateLimit?: string;
  workspace?: string;
}

/**
 * `runway alerts rules list | create <name> --on <conditions> [--job <name>] [--webhook <url>]
 * [--email <addr>…] | delete <rule id> | test <rule id>`, `runway alerts deliveries [--dead]`.
 */
export function registerAlerts(program: Command, g: () => GlobalOptions): void {
  const alerts = program.command('alerts').description('alert rules (webhooks, email) and their deliveries');
  const rules = alerts.command('rules').description('alert rules: list | create | delete | test');
  rules
    .command('list')
    .description('the alert rules of the workspace')
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (o: { workspace?: string }) => {
      const { c, wsId } = await target(g(), o.workspace);
      const { items } = await c.listAlertRules(wsId);
      printOut(g(), items, () =>
        table(
          items.map((r) => ({
            id: r.id,
            name: r.name,
            job: r.job_name ?? '(every job)',
            on: r.conditions.join(','),
            webhook: r.webhook_url ?? '',
            email: (r.email_to ?? []).join(','),
            limit: `${r.rate_limit.max}/${r.rate_limit.window_seconds}s`,
          })),
        ),
      );
    });
  rules
    .command('create <name>')
    .description('create a rule; the webhook signing secret is printed once')
    .requiredOption('--on <conditions>', `comma-separated: ${CONDITIONS.join(', ')}`)
    .option('--job <name>', 'only this job (default: every job of the workspace)')
    .option('--webhook <url>', 'POST signed alerts here (header Runway-Signature: t=<unix>,v1=<hex>)')
    .option('--email <address...>', 'send alerts to these addresses (RUNWAY_SMTP_URL on the server)')
    .option('--failures-in-row <n>', 'N of failures_in_row (default 3)')
    .option('--rate-limit <max/seconds>', 'at most max alerts per window, e.g. 10/600 (the default)')
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (name: string, o: CreateOptions) => {
      const on = o.on
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
      const unknown = on.filter((x) => !CONDITIONS.includes(x));
      if (unknown.length > 0)
        throw new CliError(`--on ${unknown.join(',')}: expected some of ${CONDITIONS.join(', ')}`, 2);
      if (!o.webhook && !o.email?.length) throw new CliError('give --webhook <url> or --email <address>', 2);
      let rateLimit: { max: number; window_seconds: number } | undefined;
      if (o.rateLimit) {
        const m = /^(\d+)\/(\d+)s?$/.exec(o.rateLimit);
        if (!m) throw new CliError(`--rate-limit ${o.rateLimit}: expected <max>/<seconds>, e.g. 10/600`, 2);
        rateLimit = { max: positive('--rate-limit', m[1]!), window_seconds: positive('--rate-limit', m[2]!) };
      }
      const { c, wsId } = await target(g(), o.workspace);
      const r = await c.createAlertRule(wsId, {
        name,
        job: o.job ?? null,
        conditions: on,
        webhook_url: o.webhook ?? null,
        email_to: o.email?.length ? o.email : null,
        ...(o.failuresInRow ? { failures_in_row: positive('--failures-in-row', o.failuresInRow) } : {}),
        ...(rateLimit ? { rate_limit: rateLimit } : {}),
      });
      printOut(g(), r, () =>
        [
          `alert rule ${r.name} created: ${r.id}`,
          ...(r.webhook_secret ? [`webhook signing secret (shown once, keep it): ${r.webhook_secret}`] : []),
          '',
        ].join('\n'),
      );
    });
  rules
    .command('delete <rule>')
    .description('delete a rule (by id)')
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (rule: string, o: { workspace?: string }) => {
      const { c, wsId } = await target(g(), o.workspace);
      const r = await c.deleteAlertRule(wsId, rule);
      printOut(g(), r, () => `alert rule ${r.id} deleted\n`);
    });
  rules
    .command('test <rule>')
    .description('send a test alert through the rule (see `runway alerts deliveries`)')
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (rule: string, o: { workspace?: string }) => {
      const { c, wsId } = await target(g(), o.workspace);
      const r = await c.testAlertRule(wsId, rule);
      printOut(g(), r, () => `test alert ${r.alert_id} raised\n`);
    });
  alerts
    .command('deliveries')
    .description('deliveries of alerts, newest first (pending, delivered, dead letters)')
    .option('--dead', 'only the dead letters (every try failed)')
    .option('--rule <id>', 'only this rule')
    .option('--limit <n>', 'at most n (default 100)')
    .option('--workspace <id>', 'another workspace than the bound one')
    .action(async (o: { dead?: boolean; rule?: string; limit?: string; workspace?: string }) => {
      const { c, wsId } = await target(g(), o.workspace);
      const { items } = await c.listAlertDeliveries(wsId, {
        ...(o.dead ? { status: 'dead' } : {}),
        ...(o.rule ? { rule_id: o.rule } : {}),
        ...(o.limit ? { limit: positive('--limit', o.limit) } : {}),
      });
      printOut(g(), items, () =>
        table(
          items.map((d) => ({
            raised: d.raised_at,
            alert: d.alert_id,
            channel: d.channel,
            status: d.status,
            tries: d.attempts,
            job: d.job_name ?? '',
            on: d.conditions.join(','),
            error: d.last_error ?? '',
          })),
        ),
      );
    });
}
