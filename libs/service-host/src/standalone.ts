import type { DynamicModule } from '@nestjs/common';
import { loadConfigOrExit } from '#libs/config';
import type { ServiceContext } from './context.js';
import { startProbeListeners } from './health-http.js';
import type { ServiceDefinition } from './host.js';
import { startServiceHost } from './host.js';
import { startNestMicroservice } from './microservice.js';

/**
 * Runs one service as its own process (compose / kubernetes) against shared NATS and PostgreSQL;
 * `npm start` hosts every service in one process instead. Stops cleanly on SIGINT / SIGTERM.
 */
export async function runStandaloneService(
  def: ServiceDefinition,
  module: { forRoot: (ctx: ServiceContext) => DynamicModule },
): Promise<void> {
  const config = loadConfigOrExit();
  if (!config.nats.url || !config.database.url) {
    process.stderr.write(
      `runway ${def.name}: NATS_URL and DATABASE_URL must be set when a service runs on its own\n`,
    );
    process.exit(2);
  }
  const service = await startServiceHost(def, config, config.database.url, config.nats.url);
  const app = await startNestMicroservice(module.forRoot(service.ctx), config.nats.url, def.name, config);
  const probes = await startProbeListeners(config.healthPort, config.http.host, service.health);
  const stop = async () => {
    for (const p of probes) await p.close();
    await app.close();
    await service.stop();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdout.write(`runway ${def.name} ready\n`);
}
