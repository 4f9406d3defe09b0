export * from './errors.js';
export * from './validation.js';
export * from './openapi.js';
export * from './multipart.js';
