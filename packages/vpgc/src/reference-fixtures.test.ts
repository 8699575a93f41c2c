/**
 * Parity with DCDmllm/Cheetah's own code: the fixture written by `scripts/reference-fixtures/cheetah.py`
 * (the authors' Q-Former `BertLMHeadModel` and their `LlamaModel.forward` VPG-C hook, float64, seeded
 * tiny config), loaded through the package's normal APIs (`loadVPGStateDict`, `loadVPGCStateDict`).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { disposeTensorMap, loadSafetensors } from '@mllm/core';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { QFormerVPG } from './qformer-vpg.js';
import { VPGC } from './vpgc.js';
import { loadVPGCStateDict, loadVPGStateDict } from './state-dict-io.js';
import type { ImageSpan } from './hook-types.js';
import { useTestBackend } from './test-support/backend.js';

useTestBackend();

interface FixtureConfig {
  qformer: {
    hidden_size: number; num_hidden_layers: number; num_attention_heads: number; intermediate_size: number;
    encoder_width: number; cross_attention_freq: number; layer_norm_eps: number;
    hidden_dropout_prob: number; attention_probs_dropout_prob: number;
  };
  num_query_token: number;
  llm_hidden_size: number;
  ln_vision_eps: number;
  update_layer: number;
  batch_size: number;
  images_per_sample: number;
  image_position_list: Array<[number, number]>;
}

function readFixture(): { bytes: Uint8Array; config: FixtureConfig } {
  const bytes = new Uint8Array(readFileSync(fileURLToPath(new URL('./__fixtures__/reference/cheetah-vpgc.safetensors', import.meta.url))));
  const { metadata } = loadSafetensors(bytes, { filter: () => false });
  return { bytes, config: JSON.parse(metadata!.config) as FixtureConfig };
}

/** The VPG and VPG-C built from the fixture's sizes and loaded from its Cheetah-named tensors. */
function build(bytes: Uint8Array, config: FixtureConfig): { vpg: QFormerVPG; vpgc: VPGC; tensors: Map<string, tf.Tensor> } {
  const q = config.qformer;
  const vpg = new QFormerVPG({
    qformer: {
      hiddenSize: q.hidden_size, numHiddenLayers: q.num_hidden_layers, numAttentionHeads: q.num_attention_heads,
      intermediateSize: q.intermediate_size, encoderWidth: q.encoder_width, crossAttentionFreq: q.cross_attention_freq,
      layerNormEps: q.layer_norm_eps, hiddenDropoutProb: q.hidden_dropout_prob, attentionProbsDropoutProb: q.attention_probs_dropout_prob,
    },
    numQueryTokens: config.num_query_token,
    llmHiddenSize: config.llm_hidden_size,
    lnVisionEps: config.ln_vision_eps,
  });
  const vpgc = new VPGC({ vpg, updateLayer: config.update_layer });
  const { tensors } = loadSafetensors(bytes);
  // strict: every VPG tensor is in the fixture; the Q-Former's position_ids buffer is skipped as text side
  const vpgLoad = loadVPGStateDict(vpg, tensors);
  expect(vpgLoad.loadedKeys).toContain('Qformer.bert.encoder.layer.0.crossattention.self.key.weight');
  const vpgcLoad = loadVPGCStateDict(vpgc, tensors);
  expect(vpgcLoad.loadedKeys.sort()).toEqual([
    'llama_model.model.llm_proj.bias', 'llama_model.model.llm_proj.weight', 'llama_model.model.qformer_proj.bias',
    'llama_model.model.qformer_proj.weight', 'llama_model.model.query_tokens',
  ]);
  return { vpg, vpgc, tensors };
}

describe("Q-Former VPG and VPG-C against Cheetah's own code (float64 fixture)", () => {
  it('first pass (encode_img without the ViT): Q-Former output and llama_proj image tokens, over CLS + all patches', () => {
    const { bytes, config } = readFixture();
    const { vpg, vpgc, tensors } = build(bytes, config);
    const features = tensors.get('inputs.image_features') as tf.Tensor3D;
    expect(features.shape[1]).toBe(5); // CLS + 4 patches
    const encoded = vpg.encode(features);
    expectClose(encoded, tensors.get('expected.qformer_output')!, { label: 'Q-Former last_hidden_state' });
    const tokens = vpg.forward(features);
    expectClose(tokens, tensors.get('expected.vpg_output')!, { label: 'VPG image tokens (llama_proj)' });
    expectNoLeaks(() => vpg.forward(features));
    tf.dispose([encoded, tokens]);
    disposeTensorMap(tensors);
    vpgc.dispose();
    vpg.dispose();
  });

  it("VPG-C hook at update_layer: guidance from each sample's last prompt token, re-query, residual on the image spans", () => {
    const { bytes, config } = readFixture();
    const { vpg, vpgc, tensors } = build(bytes, config);
    const n = config.images_per_sample;
    const imageToSample = [...Array(config.batch_size * n).keys()].map((k) => Math.floor(k / n));
    // the reference shares image_position_list across the batch: image i of sample b is image b·n + i here
    const imageSpans: ImageSpan[][] = [...Array(config.batch_size).keys()].map((b) =>
      config.image_position_list.map(([start, end], i) => ({ imageIndex: b * n + i, start, length: end - start })));
    const ctx = {
      imageSpans,
      imageToSample,
      imageFeatures: tensors.get('inputs.image_features') as tf.Tensor3D,
      lastPromptIndex: Array.from(tensors.get('inputs.last_prompt_index')!.dataSync()),
      isPrefill: true,
    };
    const hidden = tensors.get('inputs.hidden') as tf.Tensor3D;
    const expected = tensors.get('expected.hidden')!;
    const out = vpgc.beforeLayer(config.update_layer, hidden, ctx)!;
    expectClose(out, expected, { label: 'hidden after the VPG-C hook' });
    // not a no-op: the image spans moved, and only they
    const delta = tf.tidy(() => tf.max(tf.abs(tf.sub(expected, hidden)), -1).arraySync() as number[][]);
    const onSpan = (b: number, t: number) => config.image_position_list.some(([s, e]) => t >= s && t < e);
    delta.forEach((row, b) => row.forEach((d, t) => expect(d > 1e-3).toBe(onSpan(b, t))));
    expect(vpgc.beforeLayer(config.update_layer - 1, hidden, ctx)).toBeNull();
    expectNoLeaks(() => vpgc.beforeLayer(config.update_layer, hidden, ctx));
    out.dispose();
    disposeTensorMap(tensors);
    vpgc.dispose();
    vpg.dispose();
  });
});
