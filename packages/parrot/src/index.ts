/**
 * @mllm/parrot: Parrot's text-guided multilingual mixture of experts over visual tokens
 * (Sun et al., "Parrot: Multilingual Visual Instruction Tuning", AIDC-AI/Parrot).
 */
import './core-peer.js';
export * from './parrot-moe.js';
export * from './routing.js';
export * from './experts.js';
export * from './reference-config.js';
export { parrotHooks, type ParrotHooks, type ParrotHooksOptions } from './hooks.js';
export * from './attach.js';
export { PARROT_VERSION } from './version.js';
