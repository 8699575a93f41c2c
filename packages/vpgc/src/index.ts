/**
 * @mllm/vpgc: BLIP-2 Q-Former VPG and VPG-C (Cheetah, ICLR 2024) for the host MLLM, plus a seeded
 * synthetic discriminative-training data generator.
 */
import './core-peer.js';
export * from './qformer-config.js';
export * from './qformer-attention.js';
export * from './qformer-layer.js';
export * from './qformer.js';
export * from './qformer-vpg.js';
export * from './hook-types.js';
export * from './vpgc.js';
export * from './state-dict-io.js';
export * from './adapter.js';
export * from './attach.js';
export * from './projector-kind.js';
export * from './synthetic/index.js';

import { registerModuleKind } from '@mllm/core';
import { name, version } from '../package.json';
import { VPGC_MODULE_TYPE, attachVPGCFromRecord } from './attach.js';

// `import '@mllm/vpgc'` registers the kind, so core's `loadAdapter` (and a saved host's loader) can
// attach a recorded VPG-C by name.
registerModuleKind({ type: VPGC_MODULE_TYPE, packageName: name, version, attachFromRecord: attachVPGCFromRecord });
