import 'reflect-metadata';
import { loadConfigOrExit } from '#libs/config';
import { startNestMicroservice, startServiceHost } from '#libs/service-host';
import { SchedulingModule } from './scheduling.module.js';
import { schedulingService } from './scheduling.service.js';

// Bootstrap only: this service as its own process. `npm start` hosts it in-process.
const config = loadConfigOrExit();
if (!config.nats.url || !config.database.url) {
  process.stderr.write('runway scheduling: NATS_URL and DATABASE_URL must be set when a service runs on its own\n');
  process.exit(2);
}
const service = await startServiceHost(schedulingService, config, config.database.url, config.nats.url);
const app = await startNestMicroservice(SchedulingModule.forRoot(service.ctx), config.nats.url, 'scheduling', config);
const stop = async () => {
  await app.close();
  await service.stop();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
