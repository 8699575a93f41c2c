export * from './config.js';
export * from './rope.js';
export * from './attention.js';
export * from './causal-lm.js';
export * from './load.js';
