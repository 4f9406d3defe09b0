export * from './kysely.js';
export * from './migrator.js';
export * from './embedded.js';
