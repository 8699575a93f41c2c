/**
 * Writes a small deterministic demo checkpoint: a tiny HostMLLM (byte tokenizer, 2 decoder layers,
 * a 32×32 patch vision encoder) with a ParrotMoE on the projected visual tokens and stage-2 Wings
 * learners on every decoder layer, all initialized from `setSeed(seed)`; optionally trained for a
 * few steps on procedural colour questions in the six languages. Saved with core's `saveHostModel`
 * (`config.json`, `model.safetensors` with the hook modules under their reference names) plus
 * `mllm-demo.json`. About 1.5 MB.
 *
 *   pnpm --filter @mllm-example/browser-demo checkpoint [--out DIR] [--seed N] [--train-steps N] [--backend B] [--if-missing]
 */
import * as tf from '@tensorflow/tfjs'; // Node: gradients and chained tensor methods for training
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, parseBackendRequest, setSeed } from '@mllm/core';
import { HOST_CONFIG_FILE, HOST_WEIGHTS_FILE, collateChat, disposeBatch, saveHostModel, type HostMLLMConfig } from '@mllm/models';
import { DEMO_FORMAT, DEMO_MANIFEST_FILE, assembleDemoModel, type DemoManifest } from '../src/demo-model.js';
import { LANGUAGE_CODES, QUESTIONS, colourName, type LanguageCode } from '../src/languages.js';
import { drawScenePixels } from '../src/scene.js';

/** Where `pnpm dev` and the README expect the default checkpoint (git-ignored `out/`). */
export const DEFAULT_CHECKPOINT_DIR = fileURLToPath(new URL('../out/demo-checkpoint/', import.meta.url));

export const DEMO_HOST_CONFIG: HostMLLMConfig = {
  text: { vocabSize: 262, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, ropeTheta: 10000, maxLength: 256 },
  vision: { imageSize: 32, patchSize: 8, numChannels: 3, hiddenSize: 48, numLayers: 1, numHeads: 4, intermediateSize: 96, selectFeature: 'cls_patch' },
};

export function demoManifest(description: string): DemoManifest {
  return {
    format: DEMO_FORMAT,
    hostConfig: HOST_CONFIG_FILE,
    weights: [HOST_WEIGHTS_FILE],
    parrot: { moduleName: 'model.moe_model', args: { hiddenSize: 64, intermediateSize: 64, numExperts: 6, moeWeight: 0.1 } },
    wings: { stage: 2, rank: 8, layers: 'all', routerMaxLength: 256 },
    systemPrompt: null,
    maxNewTokens: 12,
    description,
  };
}

export interface MakeDemoCheckpointOptions {
  dir: string;
  seed?: number;
  /** Adam steps on procedural colour questions (default 0: initialization only). */
  trainSteps?: number;
  batchSize?: number;
  learningRate?: number;
  log?: (line: string) => void;
}

/** A training sample: a scene of one colour, a colour question in some language, the colour's name. */
function trainingBatch(step: number, batchSize: number, tokenizer: Parameters<typeof collateChat>[0], imageSize: number) {
  const samples = Array.from({ length: batchSize }, (_, k) => {
    const index = step * batchSize + k;
    const colour = (['red', 'green', 'blue', 'yellow'] as const)[index % 4]!;
    const language = LANGUAGE_CODES[Math.floor(index / 4) % LANGUAGE_CODES.length] as LanguageCode;
    const pixels = drawScenePixels(imageSize, [{ shape: (['circle', 'square', 'triangle'] as const)[index % 3]!, colour, x: 0.5, y: 0.5, size: 0.6 }]);
    return {
      messages: [
        { role: 'user' as const, content: `<image>\n${QUESTIONS[language].colour}` },
        { role: 'assistant' as const, content: colourName(language, colour) },
      ],
      images: [tf.tensor3d(pixels, [imageSize, imageSize, 3])],
    };
  });
  const batch = collateChat(tokenizer, samples, { systemPrompt: null });
  for (const s of samples) tf.dispose(s.images);
  return batch;
}

export async function makeDemoCheckpoint(options: MakeDemoCheckpointOptions): Promise<{ dir: string; parameterCount: number; losses: number[] }> {
  const seed = options.seed ?? 1234;
  const trainSteps = options.trainSteps ?? 0;
  const log = options.log ?? (() => {});
  const description =
    `Tiny seeded demo model (seed ${seed}, ${trainSteps} training steps): HostMLLM + ParrotMoE (6 experts) + Wings stage 2. ` +
    (trainSteps > 0 ? 'Trained briefly on colour questions.' : 'Untrained: answers are arbitrary bytes.');
  const manifest = demoManifest(description);
  setSeed(seed);
  const demo = assembleDemoModel(manifest, DEMO_HOST_CONFIG);
  const losses: number[] = [];
  try {
    if (trainSteps > 0) {
      demo.model.setTrainable(true);
      const variables = demo.model.trainableVariables();
      const optimizer = tf.train.adam(options.learningRate ?? 3e-3);
      for (let step = 0; step < trainSteps; step++) {
        const batch = trainingBatch(step, options.batchSize ?? 8, demo.model.tokenizer, DEMO_HOST_CONFIG.vision.imageSize);
        try {
          const loss = optimizer.minimize(() => demo.model.loss(batch), true, variables as tf.Variable[]);
          losses.push((await loss!.data())[0]!);
          loss!.dispose();
        } finally {
          disposeBatch(batch);
        }
        if (step % 10 === 0 || step === trainSteps - 1) log(`step ${step}: loss ${losses[step]!.toFixed(4)}`);
      }
      optimizer.dispose();
    }
    await mkdir(options.dir, { recursive: true });
    await saveHostModel(demo.model, options.dir);
    await writeFile(join(options.dir, DEMO_MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    return { dir: options.dir, parameterCount: demo.parameterCount, losses };
  } finally {
    demo.dispose();
  }
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = resolve(flag('out') ?? DEFAULT_CHECKPOINT_DIR);
  if (process.argv.includes('--if-missing') && existsSync(join(dir, DEMO_MANIFEST_FILE))) {
    console.log(`demo checkpoint: using ${dir}`);
    process.exit(0);
  }
  const choice = await initBackend(parseBackendRequest(flag('backend') ?? 'cpu', '--backend'));
  const started = Date.now();
  const result = await makeDemoCheckpoint({
    dir,
    seed: Number(flag('seed') ?? 1234),
    trainSteps: Number(flag('train-steps') ?? 0),
    log: (line) => console.log(line),
  });
  console.log(`wrote ${dir} (${result.parameterCount} parameters, backend ${choice.backend}, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
