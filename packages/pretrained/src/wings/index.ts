export * from './checkpoint.js';
export * from './prompt.js';
export * from './load-wings.js';
