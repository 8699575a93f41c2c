import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadAdapterFiles, readAdapterConfigFile, readSafetensorsFile } from '@mllm/core';
import { loadHostModel } from '@mllm/models';
import { parseJsonLines } from '@mllm/train';
import { skipOnBackend, testBackend } from '@mllm/core/testing';
import { QFormerVPG, VPGC } from '@mllm/vpgc';
import { runExample } from '../src/run-example.js';
import { EVAL_SETS } from '../src/seed-task.js';

// A --smoke-sized run in-process (no worker threads) on the test project's backend.
describe('vpgc-demonstrative example (smoke)', () => {
  // Measured: ~2 s on wasm, ~13 s on cpu; on software WebGPU (SwiftShader) 39 s alone and 64 s beside the
  // other backend projects (shader compilation for every new shape), so it is skipped there.
  it.skipIf(skipOnBackend(['webgpu'], 'over 60 s on software WebGPU (SwiftShader) in a full test run'))(
    'trains both stages, scores with and without VPG-C, and writes parseable results, plots and a loadable checkpoint',
    async () => {
      const out = await mkdtemp(join(tmpdir(), 'vpgc-demonstrative-'));
      try {
        const lines: string[] = [];
        const result = await runExample({
          backend: testBackend(),
          seeds: [3],
          outDir: out,
          workers: 0,
          config: { stage1Steps: 2, stage2Steps: 2, evalQuestions: 2, batchSize: 2 },
          stream: { write: (text: string) => lines.push(text), isTTY: false },
        });
        expect(result.backend).toBe(testBackend());
        expect(lines.join('')).toMatch(/vpgc-demonstrative step 12\/12/); // progress bar reached the end (4 steps + 8 questions)

        // metrics.jsonl: 2 + 2 training steps with finite losses, and one record per (set, condition)
        const metrics = parseJsonLines(await readFile(join(out, 'metrics.jsonl'), 'utf8'));
        const steps = metrics.filter((m) => m.kind === 'step');
        expect(steps.map((m) => m.stage)).toEqual(['stage1', 'stage1', 'stage2', 'stage2']);
        expect(steps.every((m) => Number.isFinite(m.loss as number))).toBe(true);
        const evals = metrics.filter((m) => m.kind === 'eval');
        expect(evals).toHaveLength(2 * Object.keys(EVAL_SETS).length);
        for (const e of evals) {
          expect(e.questions).toBe(2);
          expect((e.pickedCounts as number[]).reduce((a, b) => a + b, 0)).toBe(2);
          expect([0, 0.5, 1]).toContain(e.accuracyMean);
        }

        // results.json and results.md agree with the returned outcomes
        const json = JSON.parse(await readFile(join(out, 'results.json'), 'utf8'));
        expect(json.outcomes).toEqual(result.outcomes);
        const markdown = await readFile(join(out, 'results.md'), 'utf8');
        expect(markdown).toContain(result.table);
        expect(markdown).toMatch(/\| what changed \(held-out task\), 4-way, mean log-lik +\| 25\.0 +\| [\d.]+ ± 0\.0/);
        for (const svg of ['accuracy.svg', 'loss.svg']) {
          expect(await readFile(join(out, svg), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
        }

        // The checkpoint restores: host + Q-Former VPG, then the VPG-C adapter on top.
        const dir = join(out, 'checkpoint');
        const vpgConfig = JSON.parse(await readFile(join(dir, 'vpg-config.json'), 'utf8'));
        const start = tf.memory().numTensors;
        const vpg = new QFormerVPG(vpgConfig);
        const model = await loadHostModel(dir, { projector: vpg });
        const adapterDir = join(dir, 'vpgc-adapter');
        expect((await readAdapterConfigFile(adapterDir)).config.update_layer).toBe(1);
        const attached = await loadAdapterFiles(model, adapterDir); // attaches VPG-C and loads it
        expect(attached.module).toBeInstanceOf(VPGC);
        const { tensors } = await readSafetensorsFile(join(adapterDir, 'adapter_model.safetensors'));
        const llmProj = tensors.get('model.llm_proj.weight')!;
        expect(llmProj.shape).toEqual([64, 32]);
        // after two steps from zero, llm_proj is no longer zero
        expect(Math.max(...Array.from(llmProj.dataSync()).map(Math.abs))).toBeGreaterThan(0);
        tf.dispose([...tensors.values()]);
        attached.remove();
        attached.module.dispose();
        model.dispose();
        expect(tf.memory().numTensors).toBe(start);
        expect((await stat(join(dir, 'model.safetensors'))).size).toBeGreaterThan(0);
      } finally {
        await rm(out, { recursive: true, force: true });
      }
    },
  );
});
