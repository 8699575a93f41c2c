/**
 * @mllm/models: the host models the @mllm modules attach to — a small LLaVA-style host MLLM (text
 * decoder, patch vision encoder, projector, sequence planning, collation, loss, save/load) — and the
 * tokenizers and chat templates that feed them. The hook contract they run (`DecoderHooks`,
 * `ForwardContext`, `ImageSpan`) is in `@mllm/core`. Only what is exported here is public.
 */
export * from './tokenizer/byte-tokenizer.js';
export * from './tokenizer/chat-template.js';
export * from './tokenizer/char-tokenizer.js';
export * from './tokenizer/tokenizer-spec.js';
export * from './tokenizer/hf-tokenizer.js';
export * from './tokenizer/conversation-formats.js';
export * from './model/config.js';
export * from './model/embedding.js';
export * from './model/decoder-layer.js';
export * from './model/sequence.js';
export * from './model/context.js';
export * from './model/loss.js';
export * from './model/host-lm.js';
export * from './model/vision-encoder-block.js';
export * from './model/patch-vision-encoder.js';
export * from './model/collate.js';
export * from './model/host-mllm.js';
export * from './model/host-model-io.js';
export * from './hf/index.js';
export * from './vision/index.js';
export * from './image/index.js';
export * from './image/load.js';
export * from './llava/index.js';
export * from './input-error.js';
