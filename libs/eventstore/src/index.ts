export * from './errors.js';
export * from './events.js';
export * from './envelope.js';
export * from './event-store.js';
export * from './decider.js';
export * from './command-handler.js';
export * from './archive.js';
