export * from './aead.js';
export * from './master-key.js';
export * from './data-key.js';
export * from './secret-file.js';
export * from './transport.js';
