export * from './format.js';
export * from './stream.js';
export * from './sink.js';
export * from './reader.js';
