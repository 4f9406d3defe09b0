export * from './context.js';
export * from './host.js';
export * from './microservice.js';
export * from './rpc.js';
export * from './standalone.js';
export * from './periodic.js';
export * from './health-http.js';
