/**
 * @mllm/core: backends, safetensors and state dicts, layers, host MLLM, tokenizer, trainer.
 * Only what is exported here is public.
 */
export * from './nn/random.js';
export * from './nn/initializers.js';
export * from './nn/module.js';
export * from './nn/linear.js';
export * from './ops/matmul.js';
export * from './io/state-dict.js';
