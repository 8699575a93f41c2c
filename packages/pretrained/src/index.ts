/**
 * @mllm/pretrained: whole multimodal LLMs from checkpoint directories as their authors ship them —
 * plain LLaVA-style HF checkpoints, Parrot, Wings and Cheetah — each loaded with one call, with every
 * compatibility switch the authors' code implies set by the loader. Only what is exported here is public.
 */
export * from './pretrained-model.js';
export * from './from-pretrained.js';
export * from './llava/index.js';
export * from './cheetah/index.js';
export * from './parrot/index.js';
export * from './wings/index.js';
