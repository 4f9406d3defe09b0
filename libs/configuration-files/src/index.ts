/**
 * Configuration files as runs get them: the configurations service's object store of file bytes
 * (content-store.ts: it writes them, the execution worker reads them) and the materialization of a
 * version for a run profile (materialize.ts: fallbacks, secrets decrypted in memory only), read from
 * the configuration and keyring aggregates' events.
 */
export * from './content-store.js';
export * from './materialize.js';
