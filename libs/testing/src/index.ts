export {
  freePort,
  startNatsCluster,
  startNatsServer,
  waitForPort,
  type NatsClusterHandle,
  type NatsServerHandle,
} from '#libs/nats';
export * from './environment.js';
export * from './given-when-then.js';
export * from './projection-spec.js';
export * from './processes.js';
