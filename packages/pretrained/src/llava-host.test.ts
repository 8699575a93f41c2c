/**
 * The module packages attach to `@mllm/models`' `LlavaModel` through the `ModuleHost` contract (the verbs the
 * paper loaders use): each attaches, names its weights as the reference checkpoints do, changes the logits of a
 * forward with images, generates, and detaches without leaking. Here (not in models) because parrot, wings and
 * vpgc are this package's peers.
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { expectClose, expectNoLeaks, randomArray } from '@mllm/core/testing';
import { IMAGE_TOKEN_INDEX, LlavaModel, readLlavaConfigs } from '@mllm/models';
import { attachParrot } from '@mllm/parrot';
import { attachWings } from '@mllm/wings';
import { attachVPGC, QFormerVPG } from '@mllm/vpgc';

const checkpoint = fileURLToPath(new URL('../../models/src/__fixtures__/reference/llava-qwen2-clip', import.meta.url));

/** Random nonzero values in every parameter (zero-initialised module outputs would leave the logits unchanged). */
function randomize(model: LlavaModel, seed: number): void {
  model.namedParameters().forEach(([, p], i) => {
    const shape = p.variable.shape as number[];
    const values = randomArray(seed + i, shape.reduce((a, b) => a * b, 1), 0.3);
    tf.tidy(() => void p.variable.write(tf.tensor(values, shape, 'float32')));
  });
}

async function tinyLlava(withVpg: boolean): Promise<LlavaModel> {
  const { config, visionConfig } = await readLlavaConfigs(checkpoint);
  // Parrot routes on the CLS row: the CLIP tower keeps it (`cls_patch`), as Parrot's checkpoints say.
  const projector = withVpg
    ? new QFormerVPG({ qformer: { hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16, encoderWidth: 24 }, numQueryTokens: 3, llmHiddenSize: 32 })
    : undefined;
  const model = new LlavaModel({ config: { ...config, mm_vision_select_feature: 'cls_patch' }, visionConfig, projector });
  randomize(model, 100);
  return model;
}

const ids = [
  [11, 12, IMAGE_TOKEN_INDEX, 13, IMAGE_TOKEN_INDEX, 14, 15],
  [21, IMAGE_TOKEN_INDEX, 22, 23, 0, 0, 0],
];
const mask = [
  [1, 1, 1, 1, 1, 1, 1],
  [1, 1, 1, 1, 0, 0, 0],
];

function logitsOf(model: LlavaModel, pixels: tf.Tensor4D): number[] {
  const out = model.forward({ inputIds: ids, attentionMask: mask, pixelValues: pixels });
  const values = Array.from(out.logits.dataSync());
  out.logits.dispose();
  return values;
}

describe('attachParrot / attachWings / attachVPGC on a LlavaModel', () => {
  const cases = [
    { name: 'parrot', vpg: false, attach: (m: LlavaModel) => attachParrot(m, { intermediateSize: 24, numExperts: 3, moeWeight: 0.5, freezeBase: true }), weight: 'model.moe_model.' },
    { name: 'wings', vpg: false, attach: (m: LlavaModel) => attachWings(m, { stage: 2, rank: 3, routerMaxLength: 512, systemPromptLength: 1 }), weight: 'model.layers.0.attn_pool.' },
    { name: 'vpgc', vpg: true, attach: (m: LlavaModel) => attachVPGC(m, { updateLayer: 1 }), weight: 'model.query_tokens' },
  ];
  for (const c of cases) {
    it(`${c.name}: attaches under the reference names, changes the logits, generates, detaches`, async () => {
      const model = await tinyLlava(c.vpg);
      const pixels = tf.randomNormal([3, 3, 12, 12], 0, 1, 'float32', 7) as tf.Tensor4D;
      const base = logitsOf(model, pixels);
      const baseNames = new Set(model.namedParameters().map(([n]) => n));
      const attached = c.attach(model);
      const added = model.namedParameters().map(([n]) => n).filter((n) => !baseNames.has(n));
      expect(added.some((n) => n.startsWith(c.weight))).toBe(true);
      // attaching froze the base and left the module trainable
      expect(model.namedParameters().filter(([n]) => baseNames.has(n)).every(([, p]) => !p.variable.trainable)).toBe(true);
      model.namedParameters().filter(([n]) => !baseNames.has(n)).forEach(([, p], i) => {
        const shape = p.variable.shape as number[];
        tf.tidy(() => void p.variable.write(tf.tensor(randomArray(500 + i, shape.reduce((a, b) => a * b, 1), 0.3), shape, 'float32')));
      });
      await expectNoLeaks(() => {
        const withModule = logitsOf(model, pixels);
        expect(withModule.every(Number.isFinite)).toBe(true);
        expect(Math.max(...withModule.map((v, i) => Math.abs(v - base[i]!)))).toBeGreaterThan(1e-3);
        const tokens = model.generate(ids, { pixelValues: pixels, attentionMask: mask, maxNewTokens: 2 });
        expect(tokens.map((t) => t.length)).toEqual([2, 2]);
      });
      attached.remove();
      expect(model.namedParameters().map(([n]) => n).filter((n) => !baseNames.has(n))).toEqual([]);
      expectClose(logitsOf(model, pixels), base, { label: 'logits after remove()' });
      pixels.dispose();
      model.dispose();
    });
  }
});

