/**
 * Parity with AIDC-AI/Parrot's own `MultilingualMoE`: fixtures written by
 * `scripts/reference-fixtures/parrot.py` (the authors' module run in float64 on seeded tiny configs),
 * loaded here through the package's normal APIs (`fromReferenceConfig`, `loadSafetensors`).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { disposeTensorMap, loadSafetensors } from '@mllm/core';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { ParrotMoE } from './parrot-moe.js';
import { parseReferenceConfig } from './reference-config.js';

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(fileURLToPath(new URL(`./__fixtures__/reference/${name}.safetensors`, import.meta.url))));
}

const CASES = [
  { name: 'multilingual-moe', alpha: 0.1, source: 'config' },
  { name: 'multilingual-moe-no-moe-weight', alpha: 1.0, source: 'fallback' },
  { name: 'multilingual-moe-no-residual', alpha: 0.1, source: 'config' },
] as const;

describe("ParrotMoE against the authors' MultilingualMoE (float64 fixtures)", () => {
  for (const { name, alpha, source } of CASES) {
    it(`${name}: output, routing weights and text attention match (backend tolerance)`, () => {
      const bytes = fixture(name);
      const { tensors, metadata } = loadSafetensors(bytes, { filter: (n) => n.startsWith('inputs.') || n.startsWith('expected.') });
      const config = metadata!.config;
      const parsed = parseReferenceConfig(config);
      expect(parsed.moeWeightSource).toBe(source);
      expect(parsed.args.moeWeight).toBe(alpha);
      const moe = ParrotMoE.fromReferenceConfig(config);
      const loaded = moe.loadSafetensors(bytes, { strict: true }); // prefix model.moe_model.
      expect(loaded.loadedKeys).toHaveLength(1 + 3 * parsed.args.numExperts);
      const inputs = {
        visual: tensors.get('inputs.visual') as tf.Tensor3D,
        text: tensors.get('inputs.text') as tf.Tensor3D,
        textMask: tensors.get('inputs.text_mask') as tf.Tensor2D,
      };
      // the fixture's text is right-padded per sample; the reference saw only each sample's real tokens
      expect(JSON.parse(metadata!.text_lengths)).toEqual((inputs.textMask.sum(1).arraySync() as number[]));
      const out = moe.forward(inputs);
      expectClose(out.output, tensors.get('expected.output')!, { label: `${name} output` });
      expectClose(out.routingWeights, tensors.get('expected.routing_weights')!, { label: `${name} routing weights` });
      expectClose(out.textAttention, tensors.get('expected.text_attention')!, { label: `${name} text attention` });
      expectNoLeaks(() => moe.forward(inputs));
      tf.dispose([out.output, out.routingWeights, out.textAttention]);
      disposeTensorMap(tensors);
      moe.dispose();
    });
  }
});
