/**
 * The leaf every event definition builds on (zod only): what an event is, how it is defined and
 * versioned, and the registry that validates and upcasts payloads. libs/contracts (integration
 * events) and the services' private `<aggregate>.events.ts` use it; libs/eventstore stores what it
 * describes and re-exports it.
 */
export * from './events.js';
