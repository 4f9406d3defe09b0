export * from './metrics.js';
export * from './readiness.js';
export * from './logger.js';
export * from './tracing.js';
export * from './http.js';
export * from './grpc.js';
