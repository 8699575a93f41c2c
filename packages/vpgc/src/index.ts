/**
 * @mllm/vpgc: BLIP-2 Q-Former VPG and VPG-C (Cheetah, ICLR 2024) for the host MLLM, the paper's
 * linear-VPG variant of VPG-C for LLaVA-style hosts, and a seeded synthetic discriminative-training
 * data generator.
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
export * from './linear-vpgc.js';
export * from './attach-linear.js';
export * from './projector-kind.js';
export * from './synthetic/index.js';

import { registerModuleKind } from '@mllm/core';
import { name, version } from '../package.json';
import { VPGC_MODULE_TYPE, attachVPGCFromRecord } from './attach.js';
import { LINEAR_VPGC_MODULE_TYPE, attachLinearVPGCFromRecord } from './attach-linear.js';

// `import '@mllm/vpgc'` registers the kinds (`vpgc`, `vpgc_linear`), so core's `loadAdapter` (and a
// saved host's loader) can attach a recorded VPG-C by name.
registerModuleKind({ type: VPGC_MODULE_TYPE, packageName: name, version, attachFromRecord: attachVPGCFromRecord });
registerModuleKind({ type: LINEAR_VPGC_MODULE_TYPE, packageName: name, version, attachFromRecord: attachLinearVPGCFromRecord });
