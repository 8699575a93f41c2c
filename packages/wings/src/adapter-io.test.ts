import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  StateDictError, disposeStateDict, disposeTensorMap, loadSafetensors, loadStateDict, readSafetensorsFile, saveSafetensors,
} from '@mllm/core';
import type { HostMLLM } from '@mllm/models';
import { logitsOf, tinyHost as sharedTinyHost, tokenBatch } from '@mllm/models/testing';
import { injectWings } from './inject.js';
import { LoRRA } from './lorra.js';
import { WingsRouter } from './router.js';
import {
  RELATIVE_TOLERANCE,
  learnerStateDict,
  lorra64,
  maxRelativeError,
  randomAttentionProbs,
  randomLearnerWeights,
  randomMatrix,
  router64,
  type LearnerCase64,
  type LearnerWeights64,
} from './reference-math.testutil.js';

const H = 16;
const R = 3;
const MAX = 32;
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wings-adapter-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** The shared tiny host with Wings' 64-position text config. */
const tinyHost = (seed = 1): HostMLLM => sharedTinyHost(seed, { hiddenSize: H, maxLength: 64 });

function logits(model: HostMLLM): number[][][] {
  const pad = model.tokenizer.padId;
  const ids = [[72, 105, model.tokenizer.imageId, 120, 121], [65, 66, 67, pad, pad]];
  return tf.tidy(() => logitsOf(model, tokenBatch(model, ids, [randomMatrix(5, 4, 12)])));
}

/** Random values with few mantissa bits (exact in bfloat16). */
function bf16Exact(weights: LearnerWeights64): LearnerWeights64 {
  const round = (m: number[][]) => m.map((row) => row.map((v) => Math.round(v * 64) / 64));
  return { q: [round(weights.q[0]), round(weights.q[1])], k: [round(weights.k[0]), round(weights.k[1])], v: [round(weights.v[0]), round(weights.v[1])], o: [round(weights.o[0]), round(weights.o[1])] };
}

describe('Wings adapter files and reference checkpoints', () => {
  it('saveAdapter writes only learner/router weights under reference names; loadAdapter restores the outputs', async () => {
    const a = tinyHost();
    const injA = injectWings(a, { stage: 2, rank: R, routerMaxLength: MAX });
    for (const variable of injA.adapter.trainableVariables()) tf.tidy(() => variable.assign(tf.randomNormal(variable.shape, 0, 0.3, 'float32', 9)));
    const expected = logits(a);
    const dir = await tempDir();
    await injA.saveAdapter(dir);

    const { tensors } = await readSafetensorsFile(join(dir, 'adapter_model.safetensors'));
    const names = [...tensors.keys()].sort();
    expect(names.length).toBe(2 * 18);
    expect(names.every((n) => /^model\.layers\.[01]\.(attn_pool|attn_t_pool)\.[qkvo]_proj\.[01]\.weight$|^model\.layers\.[01]\.reweight_module\.linear\.(weight|bias)$/.test(n))).toBe(true);
    expect(tensors.get('model.layers.1.attn_pool.q_proj.0.weight')!.shape).toEqual([R, H]);
    expect(tensors.get('model.layers.1.attn_pool.q_proj.1.weight')!.shape).toEqual([H, R]);
    expect(tensors.get('model.layers.0.reweight_module.linear.weight')!.shape).toEqual([2, MAX]);
    disposeTensorMap(tensors);
    const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'WINGS', stage: 2, lora_dim: R, target_layers: [0, 1], router_max_length: MAX, hidden_size: H, num_attention_heads: 2 });

    const b = tinyHost();
    const injB = injectWings(b, { stage: 2, rank: R, routerMaxLength: MAX });
    expect(maxRelativeError(logits(b), expected)).toBeGreaterThan(1e-4);
    const before = tf.memory().numTensors;
    const result = await injB.loadAdapter(dir);
    expect(tf.memory().numTensors).toBe(before);
    expect(result.loadedKeys.length).toBe(36);
    expect(logits(b)).toEqual(expected);
    injA.adapter.dispose();
    injB.adapter.dispose();
    a.dispose();
    b.dispose();
  });

  it('strict loading: a stage-1 adapter misses the stage-2 routers; non-strict keeps their init', async () => {
    const a = tinyHost();
    const one = injectWings(a, { stage: 1, rank: R, routerMaxLength: MAX });
    const dir = await tempDir();
    await one.saveAdapter(dir);
    const b = tinyHost();
    const two = injectWings(b, { stage: 2, rank: R, routerMaxLength: MAX });
    const routerBefore = two.adapter.layer(0)!.router!.stateDict();
    await expect(two.loadAdapter(dir)).rejects.toThrowError(StateDictError);
    await expect(two.loadAdapter(dir)).rejects.toThrowError(/missing keys: model\.layers\.0\.reweight_module\.linear\.weight/);
    const result = await two.loadAdapter(dir, { strict: false });
    expect(result.missingKeys).toEqual([
      'model.layers.0.reweight_module.linear.weight', 'model.layers.0.reweight_module.linear.bias',
      'model.layers.1.reweight_module.linear.weight', 'model.layers.1.reweight_module.linear.bias',
    ]);
    const routerAfter = two.adapter.layer(0)!.router!.stateDict();
    expect(routerAfter.get('linear.weight')!.arraySync()).toEqual(routerBefore.get('linear.weight')!.arraySync());
    disposeStateDict(routerBefore);
    disposeStateDict(routerAfter);
    // A rank mismatch is reported before any weight is read.
    const c = tinyHost();
    const other = injectWings(c, { stage: 1, rank: R + 1, routerMaxLength: MAX });
    await expect(other.loadAdapter(dir)).rejects.toThrowError(/has rank 3, the adapter has 4/);
    [one, two, other].forEach((i) => i.adapter.dispose());
    [a, b, c].forEach((m) => m.dispose());
  });

  it('a safetensors file in the reference key layout (F32 and BF16) loads; learner and router outputs match float64', () => {
    for (const floatDtype of ['F32', 'BF16'] as const) {
      const visual = bf16Exact(randomLearnerWeights(41, H, R, 0.5));
      const textual = bf16Exact(randomLearnerWeights(42, H, R, 0.5));
      const routerWeight = randomMatrix(43, 2, MAX, 2).map((row) => row.map((v) => Math.round(v * 64) / 64));
      const routerBias = [0.25, -0.5];
      const file = new Map<string, tf.Tensor>([
        ...learnerStateDict(visual, 'model.layers.3.attn_pool.'),
        ...learnerStateDict(textual, 'model.layers.3.attn_t_pool.'),
        ['model.layers.3.reweight_module.linear.weight', tf.tensor2d(routerWeight)],
        ['model.layers.3.reweight_module.linear.bias', tf.tensor1d(routerBias)],
        ['model.layers.3.self_attn.q_proj.weight', tf.zeros([H, H])],
        ['model.norm.weight', tf.ones([H])],
      ]);
      const bytes = saveSafetensors(file, { format: 'pt' }, { floatDtype });
      disposeTensorMap(file);
      const { tensors } = loadSafetensors(bytes);

      const theta = 1e6;
      const visualLearner = LoRRA.fromReferenceConfig({ hidden_size: H, num_attention_heads: 4, lora_dim: R, rope_theta: theta });
      const textualLearner = LoRRA.fromReferenceConfig({ hidden_size: H, num_attention_heads: 4, lora_dim: R, rope_theta: theta });
      const router = new WingsRouter({ maxLength: MAX });
      visualLearner.loadStateDict(tensors, { prefix: 'model.layers.3.attn_pool.' });
      textualLearner.loadStateDict(tensors, { prefix: 'model.layers.3.attn_t_pool.' });
      router.loadStateDict(tensors, { prefix: 'model.layers.3.reweight_module.' });
      disposeTensorMap(tensors);

      const c: LearnerCase64 = {
        query: [Array.from({ length: 5 }, (_, t) => randomMatrix(50 + t, 1, H)[0])],
        source: [Array.from({ length: 3 }, (_, j) => randomMatrix(60 + j, 1, H)[0])],
        queryPositions: [[0, 1, 2, 3, 4]],
        keyPositions: [[1, 2, 3]],
      };
      const run = (learner: LoRRA, cc: LearnerCase64) =>
        tf.tidy(() =>
          learner
            .forward({
              query: tf.tensor3d(cc.query),
              source: tf.tensor3d(cc.source),
              queryPositions: tf.tensor2d(cc.queryPositions, undefined, 'int32'),
              keyPositions: tf.tensor2d(cc.keyPositions, undefined, 'int32'),
              causalByPosition: cc.causalByPosition,
            })
            .arraySync(),
        );
      expect(maxRelativeError(run(visualLearner, c), lorra64(visual, 4, theta, c))).toBeLessThan(RELATIVE_TOLERANCE);
      const textCase = { ...c, causalByPosition: true };
      expect(maxRelativeError(run(textualLearner, textCase), lorra64(textual, 4, theta, textCase))).toBeLessThan(RELATIVE_TOLERANCE);
      const probs = randomAttentionProbs(70, 1, 2, 5, 5);
      const gates = tf.tidy(() => {
        const { visual: v, textual: t } = router.forward(tf.tensor4d(probs));
        return tf.concat([v, t], -1).arraySync();
      });
      expect(maxRelativeError(gates, router64(routerWeight, routerBias, probs))).toBeLessThan(RELATIVE_TOLERANCE);
      [visualLearner, textualLearner, router].forEach((m) => m.dispose());
    }
  });

  it('a reference checkpoint loads into the injected host in one call', () => {
    const model = tinyHost();
    const injection = injectWings(model, { stage: 2, rank: R, routerMaxLength: MAX, layers: [1] });
    const dict = new Map<string, tf.Tensor>([
      ...learnerStateDict(randomLearnerWeights(81, H, R), 'model.layers.1.attn_pool.'),
      ...learnerStateDict(randomLearnerWeights(82, H, R), 'model.layers.1.attn_t_pool.'),
      ['model.layers.1.reweight_module.linear.weight', tf.tensor2d(randomMatrix(83, 2, MAX))],
      ['model.layers.1.reweight_module.linear.bias', tf.tensor1d([0, 1])],
    ]);
    const result = loadStateDict(model, dict, { strict: false });
    expect(result.loadedKeys.length).toBe(18);
    expect(result.unexpectedKeys).toEqual([]);
    const back = injection.adapter.stateDict();
    for (const [k, v] of dict) expect(back.get(k)!.arraySync()).toEqual(v.arraySync());
    disposeStateDict(back);
    disposeStateDict(dict);
    injection.adapter.dispose();
    model.dispose();
  });
});
