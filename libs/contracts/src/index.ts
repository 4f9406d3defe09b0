export * from './workspace.events.js';
export * from './user.events.js';
export * from './subjects.js';
export * from './registry.js';
