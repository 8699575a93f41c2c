// ESM consumer: named imports from the packed packages (their `import` condition → dist/*.js).
import * as tf from '@tensorflow/tfjs-core';
import * as core from '@mllm/core';
import * as models from '@mllm/models';
import * as train from '@mllm/train';
import { ParrotMoE, PARROT_CHECKPOINT_PREFIX } from '@mllm/parrot';
import { injectWings } from '@mllm/wings';
import { QFormerVPG, VPGC, loadVPGStateDict, loadVPGCStateDict, vpgcStateDict, VPGC_REFERENCE_PREFIX } from '@mllm/vpgc';
import { extractAnswer } from '@mllm/eval';
import { ExpertThreads } from '@mllm/parrot/threads';
import checks from './checks.cjs';

for (const name of ['@mllm/core', '@mllm/models', '@mllm/train', '@mllm/parrot', '@mllm/wings', '@mllm/vpgc', '@mllm/eval']) {
  const resolved = import.meta.resolve(name);
  if (!resolved.endsWith('/dist/index.js')) throw new Error(`${name} resolved to ${resolved}, expected the ESM build dist/index.js`);
}
if (!import.meta.resolve('@mllm/parrot/threads').endsWith('/dist/threads.js')) throw new Error('@mllm/parrot/threads did not resolve to dist/threads.js');
// The light image subpath: the same classes as the main entry (one shared chunk).
const modelsImage = await import('@mllm/models/image');
if (modelsImage.ImageProcessor !== models.ImageProcessor || modelsImage.decodeImage !== models.decodeImage) {
  throw new Error('@mllm/models/image does not export the same ImageProcessor / decodeImage as @mllm/models');
}
await checks.runChecks(
  {
    tf,
    core,
    models,
    train,
    parrot: { ParrotMoE, PARROT_CHECKPOINT_PREFIX },
    parrotThreads: { ExpertThreads },
    wings: { injectWings },
    vpgc: { QFormerVPG, VPGC, loadVPGStateDict, loadVPGCStateDict, vpgcStateDict, VPGC_REFERENCE_PREFIX },
    evaluation: { extractAnswer },
  },
  'esm',
);
// One @mllm/core in this process: the module packages use the copy imported here (peer dependency).
if (core.loadedCoreCopies().length !== 1) throw new Error(`expected one @mllm/core, got ${JSON.stringify(core.loadedCoreCopies())}`);
