import { describe, expect, it } from 'vitest';
import type { BadRowIssue } from './bad-row.js';
import type { DatasetResult, QuestionResult, RowResult } from './evaluate.js';
import { PUBLISHED_RESULTS } from './published-results.js';
import { accuracyOf, comparisonTable, reportToCsv, reportToJson, reportToMarkdown, summarize } from './report.js';

const question = (dataset: string, benchmark: 'MMMB' | 'MMBench', language: string, category: string, l2: string | undefined, correct: boolean): QuestionResult => ({
  dataset, benchmark, baseIndex: 0, language, category, l2Category: l2, split: undefined, rotations: 1, correct,
});

const questions: QuestionResult[] = [
  question('mmmb_en', 'MMMB', 'en', 'coarse_perception', 'Perception', true),
  question('mmmb_en', 'MMMB', 'en', 'logic_reasoning', 'Reasoning', false),
  question('mmmb_en', 'MMMB', 'en', 'logic_reasoning', 'Reasoning', true),
  question('mmbench_dev_ar', 'MMBench', 'ar', 'coarse_perception', undefined, true),
];
const datasets: DatasetResult[] = [
  { name: 'mmmb_en', benchmark: 'MMMB', circular: false, rows: 3, questions: 3, columns: [] },
  { name: 'mmbench_dev_ar', benchmark: 'MMBench', circular: true, rows: 4, questions: 1, columns: [] },
];
const rows = [{ method: 'letter' }, { method: 'letter' }, { method: 'text' }, { method: 'loglikelihood' }] as RowResult[];
const skipped: BadRowIssue[] = [{ rowIndex: '9', source: 'mmmb_en.tsv', line: 11, reason: 'missing-answer', message: 'has no answer' }];

describe('summarize', () => {
  const report = summarize({ questions, rows, datasets, skipped, model: 'tiny' });

  it('computes accuracy overall and per dataset, language, category and l2-category', () => {
    expect(report.overall).toEqual({ correct: 3, total: 4, accuracy: 75 });
    expect(report.byDataset.mmmb_en).toEqual({ correct: 2, total: 3, accuracy: 200 / 3, benchmark: 'MMMB', circular: false });
    expect(report.byDataset.mmbench_dev_ar).toEqual({ correct: 1, total: 1, accuracy: 100, benchmark: 'MMBench', circular: true });
    expect(report.byLanguage).toEqual({ ar: accuracyOf(1, 1), en: accuracyOf(2, 3) });
    expect(report.byCategory).toEqual({ coarse_perception: accuracyOf(2, 2), logic_reasoning: accuracyOf(1, 2) });
    expect(report.byL2Category).toEqual({ Perception: accuracyOf(1, 1), Reasoning: accuracyOf(1, 2) });
    expect(report.byBenchmarkLanguage).toEqual({ MMBench: { ar: accuracyOf(1, 1) }, MMMB: { en: accuracyOf(2, 3) } });
    expect(report.predictionMethods).toEqual({ letter: 2, text: 1, loglikelihood: 1 });
    expect(report.skippedRows).toBe(1);
    expect(accuracyOf(0, 0).accuracy).toBeNaN();
  });

  it('renders markdown with all sections, MMBench abbreviations and skipped rows', () => {
    const markdown = reportToMarkdown(report);
    expect(markdown).toContain('# Evaluation report: tiny');
    expect(markdown).toContain('Overall accuracy: **75.00%** (3 / 4 questions; 4 rows evaluated, 1 bad rows skipped).');
    expect(markdown).toContain('| mmmb_en | MMMB | no | 66.67 | 2 | 3 |');
    expect(markdown).toContain('| mmbench_dev_ar | MMBench | yes | 100.00 | 1 | 1 |');
    expect(markdown).toContain('| en | 66.67 | 2 | 3 |');
    expect(markdown).toContain('| coarse_perception (CP) | 100.00 | 2 | 2 |');
    expect(markdown).toContain('| logic_reasoning (LR) | 50.00 | 1 | 2 |');
    expect(markdown).toContain('| Reasoning | 50.00 | 1 | 2 |');
    expect(markdown).toContain('| mmmb_en.tsv | 11 | 9 | missing-answer | has no answer |');
    expect(markdown).toContain('| loglikelihood | 1 |');
  });

  it('renders CSV in long form with a skipped line', () => {
    const lines = reportToCsv(report).trim().split('\n');
    expect(lines[0]).toBe('group,key,correct,total,accuracy');
    expect(lines).toContain('overall,all,3,4,75');
    expect(lines).toContain('dataset,mmmb_en,2,3,66.6667');
    expect(lines).toContain('language,ar,1,1,100');
    expect(lines).toContain('l2-category,Reasoning,1,2,50');
    expect(lines).toContain('category,logic_reasoning,1,2,50');
    expect(lines).toContain('benchmark-language,MMMB/en,2,3,66.6667');
    expect(lines.slice(-2)).toEqual(['errors,rows,0,,', 'skipped,rows,1,,']);
  });

  it('lists the rows the model could not take (ModelInputError) in every format, counted among the wrong answers', () => {
    const message = 'LlavaModel.forward: the spliced sequence has 80 tokens, more than tokenizer_model_max_length 64 | shorten it';
    const withError = [
      ...rows.slice(0, 3),
      { dataset: 'mmbench_dev_ar', index: 7, line: 9, method: 'error', error: message, correct: false },
    ] as RowResult[];
    const failed = summarize({ questions, rows: withError, datasets, skipped: [], model: 'tiny' });
    expect([failed.errorRows, failed.errors]).toEqual([1, [{ dataset: 'mmbench_dev_ar', index: 7, line: 9, message }]]);
    expect(failed.predictionMethods).toEqual({ letter: 2, text: 1, error: 1 });
    const markdown = reportToMarkdown(failed);
    expect(markdown).toContain('(3 / 4 questions; 4 rows evaluated, 0 bad rows skipped, 1 rows the model could not take, scored wrong).');
    expect(markdown).toContain(`## Rows the model could not take (scored wrong)\n\n| Dataset | Line | Index | Error |\n|---|---:|---|---|\n| mmbench_dev_ar | 9 | 7 | ${message.replace('|', '\\|')} |\n`);
    expect(reportToCsv(failed).trim().split('\n').slice(-2)).toEqual(['errors,rows,1,,', 'skipped,rows,0,,']);
    expect(JSON.parse(reportToJson(failed)).errors).toEqual([{ dataset: 'mmbench_dev_ar', index: 7, line: 9, message }]);
    // without errors the markdown has no such section
    expect(reportToMarkdown(report)).not.toContain('could not take');
  });

  it('renders JSON that parses back, with NaN as null', () => {
    const parsed = JSON.parse(reportToJson(report));
    expect(parsed.overall).toEqual({ correct: 3, total: 4, accuracy: 75 });
    expect(parsed.skipped[0].rowIndex).toBe('9');
    const empty = JSON.parse(reportToJson(summarize({ questions: [], rows: [], datasets: [], skipped: [] })));
    expect(empty.overall.accuracy).toBeNull();
  });

  it('puts this run next to the published Parrot and LLaVA-1.5 rows', () => {
    const table = comparisonTable(report).trim().split('\n');
    expect(table[0]).toBe(
      '| Model | MMMB en | MMMB zh | MMMB pt | MMMB ar | MMMB tr | MMMB ru | MMBench en | MMBench zh | MMBench pt | MMBench ar | MMBench tr | MMBench ru |',
    );
    expect(table).toHaveLength(2 + PUBLISHED_RESULTS.length + 1);
    expect(table[2]).toBe('| Parrot-7B (Qwen1.5-7B) | 70.00 | 68.13 | 67.31 | 62.69 | 58.01 | 66.26 | 70.70 | 70.36 | 65.12 | 57.82 | 58.43 | 64.00 |');
    expect(table[3]).toBe('| Parrot-14B (Qwen1.5-14B) | 73.92 | 71.64 | 69.82 | 68.13 | 64.33 | 70.18 | 74.40 | 72.25 | 69.16 | 66.15 | 64.52 | 69.33 |');
    expect(table[4]).toBe('| LLaVA-1.5-7B (Vicuna-7B) | 67.07 | 58.83 | 59.76 | 43.50 | 46.43 | 59.06 | 65.37 | 58.33 | 59.02 | 36.16 | 43.90 | 56.95 |');
    expect(table[5]).toBe('| **tiny** | **66.67** | – | – | – | – | – | – | – | – | **100.00** | – | – |');
  });
});
