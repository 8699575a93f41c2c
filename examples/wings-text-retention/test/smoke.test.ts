/**
 * The example end to end, in-process (inline, no worker threads), with a few steps on the test
 * project's backend: every output exists and parses, the checkpoint loads back, nothing leaks.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadHostModel } from '@mllm/models';
import { readAdapterConfig } from '@mllm/wings';
import { runExample } from '../src/run-example.js';

const backend = (process.env.MLLM_TEST_BACKEND ?? 'cpu') as 'cpu' | 'wasm' | 'webgpu';

describe('wings-text-retention example (smoke)', () => {
  it.skipIf(backend === 'webgpu')('writes metrics, results, plots and a loadable checkpoint (skipped on webgpu: passes there but takes 74 s under SwiftShader)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'wings-example-'));
    const lines: string[] = [];
    try {
      const before = tf.memory().numTensors;
      const result = await runExample({
        backend,
        seeds: [3, 4],
        outDir: out,
        workers: 0,
        config: { batchSize: 2, pretrainSteps: 1, stage1Steps: 1, stage2Steps: 1, heldOutText: 4, heldOutImageVariants: 1 },
        stream: { write: (text: string) => void lines.push(text) },
      });
      expect(tf.memory().numTensors).toBe(before);

      // 2 seeds × (pretrained, llava, projector, wings), accuracies are fractions.
      expect(result.outcomes.map((o) => `${o.seed}:${o.recipe}`)).toEqual(
        [3, 4].flatMap((s) => [`${s}:pretrained`, `${s}:llava`, `${s}:projector`, `${s}:wings`]),
      );
      for (const o of result.outcomes) {
        for (const v of [o.textAccuracy, o.imageAccuracy]) expect(v >= 0 && v <= 1).toBe(true);
      }
      expect(result.table).toContain('| model');
      expect(result.table).toContain('Wings');
      expect(lines.join('')).toContain('wings-text-retention');

      // One metrics line per training step: 2 seeds × (1 + 3 recipes × (1 + 1)).
      const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(metrics).toHaveLength(2 * (1 + 3 * 2));
      for (const m of metrics) expect(Number.isFinite(m.loss)).toBe(true);
      expect(new Set(metrics.map((m) => m.stage))).toEqual(new Set(['pretrain-text', 'llava-1-projector', 'llava-2-llm+projector', 'projector-1', 'projector-2', 'wings-1-visual', 'wings-2-learners+router']));

      const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
      expect(json.outcomes).toHaveLength(8);
      const blends = json.outcomes.find((o: { routerExamples?: unknown }) => o.routerExamples).routerExamples;
      expect(blends).toHaveLength(2);
      for (const blend of blends) {
        expect(blend.visual).toHaveLength(2);
        for (const row of blend.visual) {
          expect(row).toHaveLength(blend.tokens.length);
          for (const w of row) expect(w > 0 && w < 1).toBe(true); // a softmax weight
        }
      }
      expect(readFileSync(join(out, 'results.md'), 'utf8')).toContain('# wings-text-retention results');
      for (const svg of ['accuracy.svg', 'loss.svg', 'router-blend-image.svg', 'router-blend-text.svg']) {
        expect(readFileSync(join(out, svg), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
      }
      for (const seed of [3, 4]) expect(existsSync(join(out, `pretrained-seed${seed}.safetensors`))).toBe(false);

      const host = await loadHostModel(join(out, 'checkpoint', 'host'));
      try {
        expect(host.textConfig.numLayers).toBe(2);
      } finally {
        host.dispose();
      }
      const adapter = await readAdapterConfig(join(out, 'checkpoint', 'wings-adapter'));
      expect(adapter.stage).toBe(2);
      expect(adapter.layers).toEqual([0, 1]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
