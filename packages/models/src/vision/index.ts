export * from './config.js';
export * from './layers.js';
export * from './clip.js';
export * from './siglip.js';
export * from './eva.js';
export * from './load.js';
