import 'reflect-metadata';
import { loadConfigOrExit } from '#libs/config';
import { startServiceHost } from '#libs/service-host';
import { createGatewayHttp } from './app.js';
import { startGrpcServer } from './grpc/grpc-server.js';
import { gatewayService } from './gateway.service.js';

// Bootstrap only: the gateway as its own process (compose / kubernetes). `npm start` hosts it in-process.
const config = loadConfigOrExit();
if (!config.nats.url || !config.database.url) {
  process.stderr.write(
    'runway gateway: NATS_URL and DATABASE_URL must be set when a service runs on its own\n',
  );
  process.exit(2);
}
const service = await startServiceHost(gatewayService, config, config.database.url, config.nats.url);
const app = await createGatewayHttp(service, config.nats.url, {
  devAutoApprove: config.devAutoApprove,
  publicUrl: config.publicUrl,
});
await app.listen(config.http.port, config.http.host);
const grpcServer = await startGrpcServer({
  port: config.grpc.port,
  host: config.http.host,
  app,
  maxMessageBytes: config.grpc.maxMessageBytes,
});
const stop = async () => {
  await grpcServer.stop();
  await app.close();
  await service.stop();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
