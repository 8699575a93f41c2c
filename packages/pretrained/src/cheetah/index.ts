/** Cheetah (VPG-C) as a whole model from its released files: `loadCheetah`. */
export * from './config.js';
export * from './model.js';
export * from './weights.js';
export * from './load.js';
