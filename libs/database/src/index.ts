export * from './kysely.js';
export * from './migrator.js';
export * from './embedded.js';
export * from './tables.js';
