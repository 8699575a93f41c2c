/**
 * Smoke run of the Parrot example (a few steps, inline, on the test project's backend): proves the
 * whole pipeline still works — training both recipes, the MMMB-format file, @mllm/eval scoring,
 * results, plots and checkpoint. Skipped on software WebGPU (minutes per run there).
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testBackend } from '@mllm/core/testing';
import { parseJsonLines } from '@mllm/train';
import { runExample } from '../src/run-example.js';
import { languageOfPrompt } from '../src/tasks.js';

describe('parrot-multilingual example', () => {
  it.skipIf(testBackend() === 'webgpu')('runs end to end in smoke mode and writes every output', async () => {
    const out = mkdtempSync(join(tmpdir(), 'parrot-example-'));
    const lines: string[] = [];
    const result = await runExample({
      backend: testBackend(),
      seeds: [1],
      outDir: out,
      config: { stage1Steps: 2, stage2Steps: 2, batchSize: 2 },
      perLanguage: 1,
      workers: 0,
      stream: { write: (t: string) => lines.push(t), isTTY: false },
    });
    expect(result.outcomes.map((o) => o.recipe).sort()).toEqual(['baseline', 'parrot']);
    for (const outcome of result.outcomes) expect(outcome.report.overall.total).toBe(6);
    for (const file of ['results.md', 'results.json', 'metrics.jsonl', 'accuracy-by-language.svg', 'router-weights.svg', 'loss.svg', 'mmmb-mini.tsv', 'checkpoint/model.safetensors', 'checkpoint/moe.safetensors']) {
      expect(existsSync(join(out, file)), file).toBe(true);
    }
    const metrics = parseJsonLines(readFileSync(join(out, 'metrics.jsonl'), 'utf8'));
    expect(metrics).toHaveLength(2 + 2 * 2);
    expect(metrics.every((m) => Number.isFinite(m.loss))).toBe(true);
    expect(readFileSync(join(out, 'accuracy-by-language.svg'), 'utf8')).toMatch(/^<svg/);
    expect(result.table).toMatch(/\| ar +\|/);
    const parrot = result.outcomes.find((o) => o.recipe === 'parrot')!;
    for (const weights of Object.values(parrot.routingByLanguage)) {
      expect(weights).toHaveLength(6);
      expect(weights!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    expect(lines.join('')).toMatch(/parrot-multilingual step 6\/6/);
  });

  it('finds the language of a prompt from its localized instruction', async () => {
    const { buildPrompt } = await import('@mllm/eval');
    const options = [{ letter: 'A', text: 'x' }, { letter: 'B', text: 'y' }];
    for (const language of ['en', 'zh', 'pt', 'ar', 'tr', 'ru'] as const) {
      expect(languageOfPrompt(buildPrompt({ question: 'q', hint: undefined, options, language }))).toBe(language);
    }
  });
});
