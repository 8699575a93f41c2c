'use strict';
// CommonJS consumer: require() of the packed packages (their `require` condition → dist/*.cjs).
const tf = require('@tensorflow/tfjs-core');
const core = require('@mllm/core');
const models = require('@mllm/models');
const train = require('@mllm/train');
const { ParrotMoE, PARROT_CHECKPOINT_PREFIX } = require('@mllm/parrot');
const { injectWings } = require('@mllm/wings');
const vpgc = require('@mllm/vpgc');
const { extractAnswer } = require('@mllm/eval');
const parrotThreads = require('@mllm/parrot/threads');
const { runChecks } = require('./checks.cjs');

for (const name of ['@mllm/core', '@mllm/models', '@mllm/train', '@mllm/parrot', '@mllm/wings', '@mllm/vpgc', '@mllm/eval']) {
  const resolved = require.resolve(name);
  if (!resolved.endsWith(`${require('node:path').sep}dist${require('node:path').sep}index.cjs`)) {
    throw new Error(`${name} resolved to ${resolved}, expected the CommonJS build dist/index.cjs`);
  }
}
if (!require.resolve('@mllm/parrot/threads').endsWith('threads.cjs')) throw new Error('@mllm/parrot/threads did not resolve to dist/threads.cjs');
if (require('@mllm/models/image').ImageProcessor !== models.ImageProcessor) {
  throw new Error('@mllm/models/image does not export the same ImageProcessor as @mllm/models');
}
// One @mllm/core in this process: the module packages use the copy required here (peer dependency).
if (core.loadedCoreCopies().length !== 1) throw new Error(`expected one @mllm/core, got ${JSON.stringify(core.loadedCoreCopies())}`);
runChecks({ tf, core, models, train, parrot: { ParrotMoE, PARROT_CHECKPOINT_PREFIX }, parrotThreads, wings: { injectWings }, vpgc, evaluation: { extractAnswer } }, 'cjs').catch(
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
