/** Synthetic discriminative training data (procedural scenes, attention-guided edits, templates). */
export * from './scene.js';
export * from './render.js';
export * from './region-attention.js';
export * from './edit.js';
export * from './templates.js';
export * from './generator.js';
export * from './qformer-reader.js';
