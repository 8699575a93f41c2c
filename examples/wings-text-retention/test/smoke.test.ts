/**
 * The example end to end, in-process (inline, no worker threads), with a few steps on the test
 * project's backend: every output exists and parses, the statistics cover every pre-registered
 * comparison, the checkpoint loads back, nothing leaks.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { readAdapterConfigFile } from '@mllm/core';
import { loadHostModel } from '@mllm/models';
import { runExample } from '../src/run-example.js';

const backend = (process.env.MLLM_TEST_BACKEND ?? 'cpu') as 'cpu' | 'wasm' | 'webgpu';

describe('wings-text-retention example (smoke)', () => {
  it.skipIf(backend === 'webgpu')('writes metrics, results, plots and a loadable checkpoint (skipped on webgpu: passes there but takes over a minute under SwiftShader)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'wings-example-'));
    const lines: string[] = [];
    try {
      const before = tf.memory().numTensors;
      const result = await runExample({
        backend,
        budget: 'smoke',
        seeds: [3, 4],
        outDir: out,
        workers: 0,
        config: { batchSize: 2, pretrainSteps: 1, stage1Steps: 1, stage2Steps: 1, heldOutText: 4, heldOutImageVariants: 1, llmLrRatios: [0, 0.2], routerPrompts: 2 },
        stream: { write: (text: string) => void lines.push(text) },
      });
      expect(tf.memory().numTensors).toBe(before);

      // 2 seeds × (pretrained, llava/wings at 0 and 0.2, the released groups, the router ablation).
      const runs = ['pretrained', 'llava@0', 'wings@0', 'llava@0.2', 'wings@0.2', 'wings-released@0.2', 'wings-router-frozen@0.2'];
      expect(result.outcomes.map((o) => `${o.seed}:${o.recipe === 'pretrained' ? o.recipe : `${o.recipe}@${o.ratio}`}`)).toEqual([3, 4].flatMap((s) => runs.map((r) => `${s}:${r}`)));
      for (const o of result.outcomes) {
        expect(o.text).toHaveLength(4);
        expect(o.image).toHaveLength(14); // every held-out combination once
        for (const v of [...o.text, ...o.image]) expect(v === 0 || v === 1).toBe(true);
        expect(o.textAccuracy).toBeCloseTo(o.text.reduce((a, b) => a + b, 0) / 4, 12);
      }
      expect(result.table).toContain('| model');
      expect(result.table).toContain('Wings + LLM tuned');
      expect(result.table).toContain('With 2 seed(s) the bootstrap draws only 3 different seed set(s)');
      expect(result.comparisons.map((c) => `${c.role}:${c.metric}:${c.method}-${c.control}`)).toEqual([
        'primary:text:wings@0.2-llava@0.2',
        'secondary:image:wings@0.2-llava@0.2',
        'secondary:text:wings@0-llava@1',
        'secondary:image:wings@0-llava@1',
        'secondary:image:wings@0-llava@0',
        'secondary:text:wings-released@0.2-llava@0.2',
        'ablation:text:wings@0.2-wings-router-frozen@0.2',
        'premise:text:llava@1-pretrained',
        'premise:text:llava@0.2-pretrained',
      ].filter((c) => !c.includes('@1'))); // no ratio 1 in this run: those comparisons need llava@1
      const text = lines.join('');
      expect(text).toContain('wings-text-retention smoke');
      expect(text).toMatch(/\| seed 3 pretrain-text \|/); // progress lines name the seed, the run and the stage
      expect(text).toMatch(/\| seed 4 wings-router-frozen@0\.2 2-llm\+learners\+projector \|/);

      // One metrics line per training step: 2 seeds × (1 + 6 runs × (1 + 1)).
      const runDir = result.runDir;
      expect(runDir.startsWith(join(out, 'runs'))).toBe(true);
      const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(metrics).toHaveLength(2 * (1 + 6 * 2));
      for (const m of metrics) expect(Number.isFinite(m.loss)).toBe(true);

      const json = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8'));
      expect(json.outcomes).toHaveLength(14);
      expect(json.comparisons).toHaveLength(result.comparisons.length);
      expect(json.smallestEffect).toBeGreaterThan(0);
      const blends = json.outcomes.find((o: { routerExamples?: unknown }) => o.routerExamples).routerExamples;
      expect(blends).toHaveLength(2);
      for (const blend of blends) {
        expect(blend.visual).toHaveLength(2);
        for (const row of blend.visual) {
          expect(row).toHaveLength(blend.tokens.length);
          for (const w of row) expect(w > 0 && w < 1).toBe(true); // a softmax weight
        }
      }
      for (const o of json.outcomes.filter((x: { recipe: string }) => x.recipe.startsWith('wings'))) {
        for (const w of [...o.router.imageTokens, ...o.router.imagePromptText, ...o.router.textOnly]) expect(w > 0 && w < 1).toBe(true);
      }
      expect(readFileSync(join(runDir, 'results.md'), 'utf8')).toContain('# wings-text-retention results (smoke budget)');
      for (const svg of ['dose-response-text.svg', 'dose-response-image.svg', 'accuracy.svg', 'router-blend-image.svg', 'router-blend-text.svg']) {
        expect(readFileSync(join(runDir, svg), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
      }
      expect(readdirSync(runDir).some((f) => f.startsWith('pretrained-seed'))).toBe(false);

      const host = await loadHostModel(join(out, 'checkpoint', 'host'));
      try {
        expect(host.textConfig.numLayers).toBe(2);
      } finally {
        host.dispose();
      }
      const adapter = await readAdapterConfigFile(join(out, 'checkpoint', 'wings-adapter'));
      expect(adapter.module_type).toBe('wings');
      expect(adapter.config).toMatchObject({ stage: 2, target_layers: [0, 1], lora_dim: 16 });
      expect(existsSync(join(out, 'checkpoint', 'wings-adapter', 'adapter_model.safetensors'))).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
