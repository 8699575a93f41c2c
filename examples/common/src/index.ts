export * from './cli-flags.js';
export * from './plots.js';
export * from './table.js';
export * from './worker-pool.js';
export * from './train-stage.js';
export * from './run-options.js';
export * from './announce-backend.js';
