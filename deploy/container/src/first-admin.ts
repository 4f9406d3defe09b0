import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigOrExit } from '#libs/config';
import { startServiceHost } from '#libs/service-host';
import { createGatewayHttp } from '../../../services/gateway/src/app.js';
import { ensureFirstAdmin } from '../../../services/gateway/src/bootstrap/first-admin.js';
import { gatewayService } from '../../../services/gateway/src/gateway.service.js';

// One-shot, with the environment of a gateway of a running installation (compose, Kubernetes):
//   docker compose run --rm gateway dist/deploy/container/src/first-admin.js
//   kubectl exec deploy/runway-gateway -- node dist/deploy/container/src/first-admin.js
// On the first run it makes the first admin (admin@runway.local, owner of the workspace `default`;
// decided on the event store, so never twice); every run prints a new API token of that admin on
// stdout, once (keep it like a password; revoke old ones with `runway admin tokens`). Nothing stays
// on disk: `npm start` writes this token to its data dir, a container has none worth keeping.
const dataDir = mkdtempSync(join(tmpdir(), 'runway-first-admin-'));
const config = loadConfigOrExit({ ...process.env, RUNWAY_DATA_DIR: dataDir, RUNWAY_HEALTH_PORT: '' });
if (!config.nats.url || !config.database.url) {
  process.stderr.write(
    'runway first-admin: NATS_URL and DATABASE_URL must be set (the gateway environment)\n',
  );
  process.exit(2);
}
let code = 0;
const service = await startServiceHost(gatewayService, config, config.database.url, config.nats.url);
try {
  const app = await createGatewayHttp(service, config.nats.url, {
    devAutoApprove: false,
    publicUrl: config.publicUrl,
  });
  await app.init();
  const admin = await ensureFirstAdmin(app, service);
  process.stdout.write(readFileSync(admin.tokenFile, 'utf8').trim() + '\n');
  process.stderr.write(
    `runway first-admin: ${admin.adminUserId} (admin@runway.local), workspace default ${admin.defaultWorkspaceId}\n`,
  );
  await app.close();
} catch (err) {
  process.stderr.write(`runway first-admin: ${err instanceof Error ? err.message : String(err)}\n`);
  code = 1;
} finally {
  await service.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(code);
