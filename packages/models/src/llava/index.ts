export * from './config.js';
export * from './projector.js';
export * from './llava-model.js';
export * from './load.js';
