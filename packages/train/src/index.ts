/**
 * @mllm/train: training for @mllm models — AdamW with parameter groups, learning-rate schedules,
 * gradient clipping, parameter selection and training stages, the trainer loop with progress and
 * metrics logs, and crash-safe checkpoint sets. Only what is exported here is public.
 */
export * from './lr-schedule.js';
export * from './clip-grad-norm.js';
export * from './parameter-selector.js';
export * from './parameter-groups.js';
export * from './adamw.js';
export * from './training-stage.js';
export * from './progress.js';
export * from './metrics-log.js';
export * from './trainer.js';
export * from './checkpoint.js';
