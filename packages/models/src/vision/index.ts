export * from './config.js';
export * from './layers.js';
export * from './clip.js';
export * from './siglip.js';
export * from './load.js';
