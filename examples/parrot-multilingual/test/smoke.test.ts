/**
 * Smoke run of the Parrot experiment (a few steps, inline, on the test project's backend): proves the
 * whole pipeline still works — pretraining (stages 0 + 1), every stage-2 run (four recipes at the
 * primary share, baseline and Parrot at the others), free-generation scoring, the statistics, results,
 * plots and checkpoint — and that a second invocation gets its own run directory and reuses the
 * cached pretraining. Skipped on software WebGPU (minutes per run there).
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testBackend } from '@mllm/core/testing';
import { parseJsonLines } from '@mllm/train';
import { runExample, stage2Runs } from '../src/run-example.js';
import { DEFAULT_CONFIG } from '../src/recipe.js';

describe('parrot-multilingual example', () => {
  it.skipIf(testBackend() === 'webgpu')('runs end to end in smoke mode, writes every output, keeps every run', async () => {
    const out = mkdtempSync(join(tmpdir(), 'parrot-example-'));
    const lines: string[] = [];
    const options = {
      backend: testBackend(),
      seeds: [1],
      outDir: out,
      budget: 'smoke',
      config: { stage0Steps: 2, stage1Steps: 1, stage2Steps: 1, batchSize: 2, shares: [0.02, 0.1], primaryShare: 0.1 },
      perLanguage: 1,
      workers: 0,
      stream: { write: (t: string) => lines.push(t), isTTY: false },
    };
    const result = await runExample(options);
    // 2 shares: baseline + parrot at 2 %, all four recipes at the primary 10 %.
    expect(result.outcomes.map((o) => `${o.recipe}@${o.share}`).sort()).toEqual(
      ['baseline@0.02', 'baseline@0.1', 'mlp@0.1', 'parrot-uniform@0.1', 'parrot@0.02', 'parrot@0.1'],
    );
    for (const outcome of result.outcomes) {
      expect(outcome.scores.exact).toHaveLength(6);
      // Exact match implies the right language; an answer in English for a non-English prompt is not in its language.
      outcome.scores.exact.forEach((v, q) => expect(v).toBeLessThanOrEqual(outcome.scores.rightLanguage[q]));
      outcome.scores.english.forEach((v, q) => q > 0 && expect(v + outcome.scores.rightLanguage[q]).toBeLessThanOrEqual(1));
    }
    expect(result.pretrain.textPremise.exact).toHaveLength(6);
    for (const file of ['results.md', 'results.json', 'metrics.jsonl', 'dose-response.svg', 'accuracy-by-language.svg', 'router-weights.svg']) {
      expect(existsSync(join(result.runDir, file)), file).toBe(true);
    }
    for (const file of ['checkpoint/model.safetensors', 'checkpoint/moe.safetensors', 'cache/pretrained.safetensors']) expect(existsSync(join(out, file)), file).toBe(true);
    const metrics = parseJsonLines(readFileSync(join(result.runDir, 'metrics.jsonl'), 'utf8'));
    expect(metrics).toHaveLength(2 + 1 + 6 * 1);
    expect(metrics.every((m) => Number.isFinite(m.loss))).toBe(true);
    expect(new Set(metrics.map((m) => m.stage))).toEqual(new Set(['stage 0', 'stage 1', 'stage 2']));
    const saved = JSON.parse(readFileSync(join(result.runDir, 'results.json'), 'utf8'));
    expect(saved.comparisons.map((c: { method: string; control: string; share: number }) => `${c.method}-${c.control}@${c.share}`)).toEqual(
      ['parrot-baseline@0.1', 'parrot-baseline@0.1', 'parrot-parrot-uniform@0.1', 'parrot-mlp@0.1', 'parrot-baseline@0.02'],
    );
    expect(saved.backend).toMatch(new RegExp(`^${testBackend()} \\(this thread: \\w+\\)$`));
    for (const c of saved.comparisons) expect(['reproduced', 'not reproduced', 'inconclusive at this budget']).toContain(c.verdict);
    expect(result.table).toMatch(/\| parrot-uniform +\|/);
    expect(result.table).toMatch(/Dose–response/);
    const uniform = result.outcomes.find((o) => o.recipe === 'parrot-uniform')!;
    for (const weights of Object.values(uniform.routingByLanguage)) {
      expect(weights).toHaveLength(6);
      for (const w of weights!) expect(w).toBeCloseTo(1 / 6, 6); // the frozen zero router stays uniform
    }
    expect(lines.join('')).toMatch(/parrot-multilingual smoke step 9\/9 \| seed 1 \w[\w-]* \d+% stage 2/);
    expect(lines.join('')).toMatch(/pretrain \(seed 0\) stage 0/);

    // A second invocation: its own run directory, the first one's results untouched, pretraining reused.
    const firstResults = readFileSync(join(result.runDir, 'results.json'), 'utf8');
    lines.length = 0;
    const again = await runExample(options);
    expect(again.runDir).not.toBe(result.runDir);
    expect(readFileSync(join(result.runDir, 'results.json'), 'utf8')).toBe(firstResults);
    expect(lines.join('')).toMatch(/reusing the pretrained/);
    expect(again.outcomes.map((o) => o.scores)).toEqual(result.outcomes.map((o) => o.scores)); // deterministic
  }, 120_000);

  it('runs baseline and Parrot at every share and the ablations at the primary share', () => {
    const runs = stage2Runs(DEFAULT_CONFIG);
    expect(runs).toHaveLength(2 * 4 + 2);
    expect(runs.filter((r) => r.recipe === 'mlp').map((r) => r.share)).toEqual([DEFAULT_CONFIG.primaryShare]);
    expect(() => stage2Runs({ ...DEFAULT_CONFIG, primaryShare: 0.3 })).toThrow(/primaryShare must be one of shares \(0.01, 0.02, 0.05, 0.1\), got 0.3/);
  });
});
