import 'reflect-metadata';
import { loadConfigOrExit } from '#libs/config';
import { startNestMicroservice, startServiceHost } from '#libs/service-host';
import { DeploymentsModule } from './deployments.module.js';
import { deploymentsService } from './deployments.service.js';

// Bootstrap only: this service as its own process. `npm start` hosts it in-process.
const config = loadConfigOrExit();
if (!config.nats.url || !config.database.url) {
  process.stderr.write('runway deployments: NATS_URL and DATABASE_URL must be set when a service runs on its own\n');
  process.exit(2);
}
const service = await startServiceHost(deploymentsService, config, config.database.url, config.nats.url);
const app = await startNestMicroservice(DeploymentsModule.forRoot(service.ctx), config.nats.url, 'deployments', config);
const stop = async () => {
  await app.close();
  await service.stop();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
