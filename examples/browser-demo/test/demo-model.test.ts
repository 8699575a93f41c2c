/**
 * Node tests of the demo's model code shared with the page: token pieces for the charts (byte and
 * char tokenizers), the canvas → model-input downsampling, and loading a checkpoint in the Parrot
 * example's layout (no `mllm-demo.json`). Plain JS expectations written here, not taken from the
 * implementation. cpu project only (pure JS plus a tiny model).
 */
import '@tensorflow/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { disposeStateDict, setSeed, stateDict, writeSafetensorsFile } from '@mllm/core';
import { ByteTokenizer, CharTokenizer, HostMLLM, saveHostModel } from '@mllm/models';
import { ParrotMoE } from '@mllm/parrot';
import { readDemoCheckpoint } from '../scripts/checkpoint-files.js';
import { aggregatePieces, buildDemoModel, inferManifest, runDemo, tokenPieces } from '../src/demo-model.js';
import { downsampleRgba, insideObject, renderSceneRgba } from '../src/scene.js';

const onCpu = process.env.MLLM_TEST_BACKEND === 'cpu';

describe.skipIf(!onCpu)('demo model helpers', () => {
  it('groups byte tokens into characters and keeps specials and invalid bytes apart', () => {
    const tokenizer = new ByteTokenizer();
    // ▸ = <|im_start|>, "Ça 红?" = C3 87 | 61 | 20 | E7 BA A2 | 3F, then two stray bytes 0xDF
    const ids = [tokenizer.imStartId, 0xc3, 0x87, 0x61, 0x20, 0xe7, 0xba, 0xa2, 0x3f, 0xdf, 0xdf, tokenizer.imEndId];
    const pieces = tokenPieces(ids, tokenizer);
    expect(pieces.map((p) => p.label)).toEqual(['▸', 'Ç', 'a', '␣', '红', '?', '\uFFFD', '\uFFFD', '◂']);
    expect(pieces.map((p) => [p.start, p.end])).toEqual([[0, 1], [1, 3], [3, 4], [4, 5], [5, 8], [8, 9], [9, 10], [10, 11], [11, 12]]);
    expect(pieces.map((p) => p.kind)).toEqual(['special', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'special']);
    const values = ids.map((_, i) => i + 1); // 1..12
    expect(aggregatePieces(values, pieces, 'sum')).toEqual([1, 2 + 3, 4, 5, 6 + 7 + 8, 9, 10, 11, 12]);
    expect(aggregatePieces(values, pieces, 'mean')).toEqual([1, 2.5, 4, 5, 7, 9, 10, 11, 12]);
  });

  it('gives one piece per character with a char tokenizer; image tokens are ▣', () => {
    const tokenizer = CharTokenizer.fromTexts(['ما لون', 'Какой']);
    const ids = [tokenizer.imStartId, -1, -2, ...tokenizer.encode('ما К'), tokenizer.imEndId];
    const pieces = tokenPieces(ids, tokenizer);
    expect(pieces.map((p) => p.label)).toEqual(['▸', '▣', '▣', 'م', 'ا', '␣', 'К', '◂']);
    expect(pieces.map((p) => p.kind)).toEqual(['special', 'image', 'image', 'text', 'text', 'text', 'text', 'special']);
  });

  it('renders scenes pixel-exactly and block-averages them to the model input', () => {
    expect(insideObject({ shape: 'triangle', colour: 'red', x: 0.5, y: 0.5, size: 0.5 }, 0.5, 0.3)).toBe(true); // near the apex
    expect(insideObject({ shape: 'triangle', colour: 'red', x: 0.5, y: 0.5, size: 0.5 }, 0.3, 0.3)).toBe(false);
    // a red square covering exactly the top-left 4×4 block of an 8×8 canvas
    const rgba = renderSceneRgba(8, [{ shape: 'square', colour: 'red', x: 0.25, y: 0.25, size: 0.5 }]);
    const pixels = downsampleRgba(rgba, 8, 2); // [2, 2, 3]
    const red = [230 / 255, 26 / 255, 26 / 255];
    expect(Array.from(pixels).map((v) => Number(v.toFixed(6)))).toEqual([...red, 1, 1, 1, 1, 1, 1, 1, 1, 1].map((v) => Number(v.toFixed(6))));
    // half-transparent black over white averages to 0.5 (alpha compositing)
    const half = new Uint8ClampedArray([0, 0, 0, 128]);
    expect(downsampleRgba(half, 1, 1)[0]).toBeCloseTo(1 - 128 / 255, 6);
    expect(() => downsampleRgba(new Uint8ClampedArray(8), 2, 1)).toThrow(/rgba must hold width·width·4 = 16 bytes, got 8/);
    expect(() => downsampleRgba(new Uint8ClampedArray(36), 3, 2)).toThrow(/width 3 must be a multiple of size 2/);
  });

  it("loads a checkpoint in the Parrot example's layout (no mllm-demo.json): host + model.moe_model.*", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mllm-parrot-layout-'));
    const tokenizer = CharTokenizer.fromTexts(['What colour is the shape?', 'ما لون الشكل؟', 'red أحمر']);
    setSeed(7);
    const host = new HostMLLM({
      config: {
        text: { vocabSize: tokenizer.vocabSize, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 24, maxLength: 128 },
        vision: { imageSize: 8, patchSize: 4, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16, selectFeature: 'cls_patch' },
        tokenizer: tokenizer.toJSON(),
      },
    });
    const moe = new ParrotMoE({ hiddenSize: 16, intermediateSize: 8, numExperts: 3, moeWeight: 0.25 });
    try {
      await saveHostModel(host, dir);
      const weights = stateDict(moe, 'model.moe_model.');
      try {
        await writeSafetensorsFile(join(dir, 'moe.safetensors'), weights, { format: 'pt' });
      } finally {
        disposeStateDict(weights);
      }
      writeFileSync(join(dir, 'moe-config.json'), JSON.stringify(moe.getConfig()));

      const files = await readDemoCheckpoint(dir);
      expect(files.manifest).toEqual(inferManifest(moe.getConfig() as Record<string, unknown>));
      expect(files.manifest.parrot?.args).toMatchObject({ hiddenSize: 16, intermediateSize: 8, numExperts: 3, moeWeight: 0.25 });
      expect(files.manifest.weights).toEqual(['model.safetensors', 'moe.safetensors']);
      const demo = buildDemoModel(files);
      try {
        const gate = demo.moe!.gate.kernelValue.arraySync();
        expect(gate).toEqual(moe.gate.kernelValue.arraySync()); // loaded, not freshly initialized
        const before = tf.memory().numTensors;
        const pixels = new Float32Array(8 * 8 * 3).fill(0.5);
        const result = await runDemo(demo, { pixels, question: 'ما لون الشكل؟', maxNewTokens: 2 });
        expect(tf.memory().numTensors).toBe(before);
        expect(result.wings).toBeNull();
        expect(result.routingWeights!.length).toBe(3);
        expect(result.routingWeights!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
        // attention is a distribution over the prompt's text tokens (the image placeholder excluded)
        const attention = result.textAttention!;
        expect(attention.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
        expect(attention[result.promptIds.indexOf(tokenizer.imageId)]).toBe(0);
        expect(result.imageSpan.length).toBe(5); // 4 patches + CLS
      } finally {
        demo.dispose();
      }
    } finally {
      host.dispose();
      moe.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
