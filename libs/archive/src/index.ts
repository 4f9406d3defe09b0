export * from './errors.js';
export * from './paths.js';
export * from './hash.js';
export * from './manifest.js';
export * from './package.js';
export { readTar, writeTar, type TarMember, type TarWriteEntry } from './tar.js';
export * from './file-list.js';
