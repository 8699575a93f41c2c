/**
 * Parity with the authors' own PyTorch modules: fixtures written by
 * `scripts/reference-fixtures/wings.py` (AIDC-AI/Wings `WingsAttention`, `ReweightLinear`, and one
 * Qwen2 decoder layer wired by `modeling_wings_qwen2.py`, all run in float64), loaded through the
 * package's loading API and compared at `RELATIVE_TOLERANCE` (1e-5; WebGPU 3e-4).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { fileURLToPath } from 'node:url';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { disposeStateDict, loadStateDict, readSafetensorsFile, writeSafetensorsFile, type StateDict } from '@mllm/core';
import { HostLM } from '@mllm/models';
import { LoRRA } from './lorra.js';
import { WingsRouter } from './router.js';
import { REFERENCE_COMPAT } from './wings-layer.js';
import { loadWingsCheckpoint, type LoadWingsCheckpointOptions } from './load-checkpoint.js';
import type { WingsKeyContext } from './learner-keys.js';
import { RELATIVE_TOLERANCE, maxRelativeError } from './reference-math.testutil.js';

interface Fixture {
  tensors: StateDict;
  config: Record<string, number | string>;
  metadata: Record<string, string>;
}

const loadedFixtures: Fixture[] = [];

async function fixture(name: string): Promise<Fixture> {
  const path = fileURLToPath(new URL(`./__fixtures__/reference/${name}.safetensors`, import.meta.url));
  const { tensors, metadata } = await readSafetensorsFile(path);
  const meta = (metadata ?? {}) as Record<string, string>;
  const out = { tensors, config: JSON.parse(meta['config']!) as Fixture['config'], metadata: meta };
  loadedFixtures.push(out);
  return out;
}

function get(f: Fixture, name: string): tf.Tensor {
  const t = f.tensors.get(name);
  if (!t) throw new Error(`fixture has no tensor ${name}`);
  return t;
}

/** The fixture's parameters (everything but inputs / captured values / outputs), with an optional renaming prefix. */
function parameters(f: Fixture, keep: (name: string) => boolean, prefix = ''): StateDict {
  const out: StateDict = new Map();
  for (const [name, t] of f.tensors) {
    if (/^(inputs|outputs|captured)\./.test(name) || !keep(name)) continue;
    out.set(prefix + name, t);
  }
  return out;
}

afterAll(() => {
  for (const f of loadedFixtures) disposeStateDict(f.tensors);
});

describe('parity with the authors’ WingsAttention (both learners)', () => {
  it('visual learner (unmasked, image positions) and textual learner (4-D mask, padding_length rows uniform)', async () => {
    const f = await fixture('wings-attention');
    const visual = LoRRA.fromReferenceConfig(f.config as never);
    const textual = LoRRA.fromReferenceConfig(f.config as never);
    visual.loadStateDict(f.tensors, { prefix: 'attn_pool.', strict: false });
    textual.loadStateDict(f.tensors, { prefix: 'attn_t_pool.', strict: false });
    expect(visual.loadStateDict(parameters(f, (n) => n.startsWith('attn_pool.')), { prefix: 'attn_pool.' }).loadedKeys.length).toBe(8);
    expect(textual.loadStateDict(parameters(f, (n) => n.startsWith('attn_t_pool.')), { prefix: 'attn_t_pool.' }).loadedKeys.length).toBe(8);
    const before = tf.memory().numTensors;
    const gotVisual = tf.tidy(() =>
      visual
        .forward({
          query: get(f, 'inputs.query'),
          source: get(f, 'inputs.visual.source'),
          queryPositions: get(f, 'inputs.query_positions'),
          keyPositions: get(f, 'inputs.visual.key_positions'),
        })
        .arraySync(),
    );
    expect(maxRelativeError(gotVisual, get(f, 'outputs.visual').arraySync())).toBeLessThan(RELATIVE_TOLERANCE);

    // The reference's textual mask: additive 4-D model mask (0 = attend), then the last padding_length[b]
    // query rows of sample b fully masked — an uniform average in its additive softmax.
    const [B, Lq] = get(f, 'inputs.query').shape;
    const padding = Array.from(get(f, 'inputs.textual.padding_length').dataSync());
    const mask4d = get(f, 'inputs.textual.attention_mask_4d').arraySync() as number[][][][];
    const Lk = get(f, 'inputs.textual.source').shape[1]!;
    const attend = Array.from({ length: B }, (_, b) =>
      Array.from({ length: Lq! }, (_, t) => Array.from({ length: Lk }, (_, j) => (t < Lq! - padding[b] && mask4d[b][0][t][j] === 0 ? 1 : 0))),
    );
    const runTextual = (rows: 'uniform' | 'zero') =>
      tf.tidy(() =>
        textual
          .forward({
            query: get(f, 'inputs.query'),
            source: get(f, 'inputs.textual.source'),
            queryPositions: get(f, 'inputs.query_positions'),
            keyPositions: get(f, 'inputs.textual.key_positions'),
            attendMask: tf.tensor3d(attend),
            fullyMaskedRows: rows,
          })
          .arraySync(),
      );
    const expectedTextual = get(f, 'outputs.textual').arraySync();
    expect(maxRelativeError(runTextual('uniform'), expectedTextual)).toBeLessThan(RELATIVE_TOLERANCE);
    // The fixture bites: the clean fully-masked rows (zero) are not the reference's.
    expect(maxRelativeError(runTextual('zero'), expectedTextual)).toBeGreaterThan(1e-2);
    expect(tf.memory().numTensors).toBe(before);
    visual.dispose();
    textual.dispose();
  });
});

describe('parity with the authors’ ReweightLinear', () => {
  it('router weights from the head-summed attention probabilities', async () => {
    const f = await fixture('reweight-linear');
    const router = new WingsRouter({ maxLength: Number(f.config['router_max_length']) });
    router.loadStateDict(parameters(f, () => true));
    const before = tf.memory().numTensors;
    const { visual, textual } = router.forward(get(f, 'inputs.attention_probs'));
    expect(maxRelativeError(visual.arraySync(), get(f, 'outputs.visual').arraySync())).toBeLessThan(RELATIVE_TOLERANCE);
    expect(maxRelativeError(textual.arraySync(), get(f, 'outputs.textual').arraySync())).toBeLessThan(RELATIVE_TOLERANCE);
    tf.dispose([visual, textual]);
    expect(tf.memory().numTensors).toBe(before);
    router.dispose();
  });
});

describe('parity with one decoder layer wired by modeling_wings_qwen2.py, loaded with loadWingsCheckpoint', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wings-parity-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The fixture written as a released checkpoint (`model.layers.0.*` + config.json), loaded into a one-layer host. */
  async function loadLayer(f: Fixture, name: string, options?: LoadWingsCheckpointOptions) {
    const c = f.config as Record<string, number>;
    const host = new HostLM({
      config: {
        vocabSize: 16, hiddenSize: c['hidden_size'], numLayers: 1, numHeads: c['num_attention_heads'],
        intermediateSize: c['intermediate_size'], ropeTheta: c['rope_theta'], rmsEps: c['rms_norm_eps'], qkvBias: true,
      },
    });
    const checkpoint = join(dir, name);
    const all = parameters(f, () => true, 'model.layers.0.');
    await mkdir(checkpoint, { recursive: true });
    await writeSafetensorsFile(join(checkpoint, 'model.safetensors'), all, { format: 'pt' });
    await writeFile(join(checkpoint, 'config.json'), JSON.stringify({ model_type: 'wings_qwen2', lora_dim: c['lora_dim'], system_prompt_length: c['system_prompt_length'] }));
    // The host's own decoder layer gets the Qwen2 weights; the Wings modules come from the checkpoint loader.
    loadStateDict(host.layers[0], parameters(f, (n) => !/^(attn_pool|attn_t_pool|reweight_module)\./.test(n)));
    const injection = await loadWingsCheckpoint(host, checkpoint, options);
    return { host, injection };
  }

  /** Runs the host's layer 0 on the fixture's embeddings with the injected Wings update (host conventions: right padding, positions 0.. per sample). */
  function run(f: Fixture, host: HostLM, adapter: Awaited<ReturnType<typeof loadLayer>>['injection']['adapter']): number[][][] {
    return tf.tidy(() => {
      const embeds = get(f, 'inputs.inputs_embeds') as tf.Tensor3D;
      const [B, L] = embeds.shape;
      const N = Number(f.config['image_token_length']);
      const mask = get(f, 'inputs.attention_mask').arraySync() as number[][];
      const starts = Array.from(get(f, 'inputs.image_starts').dataSync());
      const features = get(f, 'inputs.image_features').arraySync() as number[][][];
      const imageSamples = starts.map((s, b) => (s >= 0 ? b : -1)).filter((b) => b >= 0);
      const ctx: WingsKeyContext = {
        inputEmbeddings: embeds,
        positions: tf.tensor2d(Array.from({ length: B }, () => Array.from({ length: L }, (_, t) => t)), [B, L], 'int32'),
        attentionMask: tf.tensor2d(mask),
        textMask: tf.tensor2d(mask.map((row, b) => row.map((v, t) => (starts[b] >= 0 && t >= starts[b] && t < starts[b] + N ? 0 : v)))),
        imageSpans: starts.map((s, b) => (s >= 0 ? [{ imageIndex: imageSamples.indexOf(b), start: s, length: N }] : [])),
        hasImage: tf.tensor1d(starts.map((s) => (s >= 0 ? 1 : 0))),
        visualTokens: tf.tensor3d(imageSamples.map((b) => features[b])),
        isPrefill: true,
      };
      // Main attention: causal, padding keys masked (nonzero = attend).
      const attend = tf.tensor4d(mask.map((row) => [Array.from({ length: L }, (_, t) => row.map((v, j) => (j <= t && v ? 1 : 0)))]));
      const { hidden, present } = host.layers[0].forward(embeds, {
        positions: ctx.positions,
        mask: attend,
        returnProbs: true,
        afterAttention: ({ residual, attentionProbs }) => adapter.afterAttention(0, residual, attentionProbs, ctx),
      });
      tf.dispose([present.keys, present.values]);
      return hidden.arraySync();
    });
  }

  for (const name of ['decoder-layer-images', 'decoder-layer-mixed'] as const) {
    it(`${name}: the reference preset (loadWingsCheckpoint's default) reproduces the authors' layer; the clean design does not`, async () => {
      const f = await fixture(name);
      const expected = get(f, 'outputs.hidden_states').arraySync();
      const { host, injection } = await loadLayer(f, name);
      expect(injection.config.referenceCompat).toEqual(REFERENCE_COMPAT);
      expect(injection.config.systemPromptLength).toBe(f.config['system_prompt_length']);
      expect(injection.config.stage).toBe(2);
      const before = tf.memory().numTensors;
      const got = run(f, host, injection.adapter);
      expect(tf.memory().numTensors).toBe(before);
      expect(maxRelativeError(got, expected)).toBeLessThan(RELATIVE_TOLERANCE);
      injection.remove();
      injection.adapter.dispose();

      // The stage-2 update added once (doubleAdd off, the other switches on) is not the reference's …
      const single = await loadWingsCheckpoint(host, join(dir, name), { referenceCompat: { ...REFERENCE_COMPAT, doubleAdd: false } });
      expect(maxRelativeError(run(f, host, single.adapter), expected)).toBeGreaterThan(1e-3);
      single.remove();
      single.adapter.dispose();
      // … nor is the clean design, which stays available as an explicit choice.
      const clean = await loadWingsCheckpoint(host, join(dir, name), { referenceCompat: 'clean' });
      expect(clean.config.referenceCompat.doubleAdd).toBe(false);
      expect(maxRelativeError(run(f, host, clean.adapter), expected)).toBeGreaterThan(1e-3);
      clean.remove();
      clean.adapter.dispose();
      host.dispose();
    });
  }
});
