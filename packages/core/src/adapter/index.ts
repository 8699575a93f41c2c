export * from './module-host.js';
export * from './attached-module.js';
export * from './module-registry.js';
export * from './adapter-format.js';
