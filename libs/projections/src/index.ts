export * from './projection.js';
export * from './migrations.js';
export * from './runner.js';
export * from './rebuild.js';
export * from './checkpoint-watcher.js';
export * from './dead-letters.js';
export * from './leader.js';
export * from './typed-events.js';
