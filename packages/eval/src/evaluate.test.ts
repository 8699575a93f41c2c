import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BadRowError } from './bad-row.js';
import type { OptionChoice } from './benchmark-reader.js';
import type { EvalModel } from './eval-model.js';
import { argmaxScore, evaluate, scoreQuestions, type RowResult } from './evaluate.js';
import type { PixelImage } from '@mllm/models/image';
import { ModelInputError } from '@mllm/models';
import { ANSWER_INSTRUCTIONS } from './languages.js';
import { writeTsv, type BenchmarkRowInput } from './tsv-writer.js';

/** 1×2 image: red, 20% grey (8-bit exact). */
const IMAGE: PixelImage = { height: 1, width: 2, data: Float32Array.from([1, 0, 0, 0.2, 0.2, 0.2]) };

interface Call {
  prompt: string;
  shapes: number[][];
  pixels: number[][];
}

/**
 * A scripted model: answers by question text (the prompt's first line); `scores` (by question)
 * drive the log-likelihood fallback.
 */
function scriptedModel(
  replies: Record<string, string>,
  scores?: Record<string, number[]>,
): EvalModel & { calls: Call[]; scoreCalls: Array<{ prompt: string; options: readonly OptionChoice[] }> } {
  const calls: Call[] = [];
  const scoreCalls: Array<{ prompt: string; options: readonly OptionChoice[] }> = [];
  const questionOf = (prompt: string) => prompt.split('\n')[0];
  const model = {
    name: 'scripted',
    calls,
    scoreCalls,
    generate(prompt: string, images: readonly tf.Tensor3D[]) {
      calls.push({ prompt, shapes: images.map((image) => image.shape), pixels: images.map((image) => Array.from(image.dataSync())) });
      const reply = replies[questionOf(prompt)];
      if (reply === undefined) throw new Error(`no scripted reply for ${questionOf(prompt)}`);
      return reply;
    },
    ...(scores
      ? {
          async scoreOptions(prompt: string, images: readonly tf.Tensor3D[], options: readonly OptionChoice[]) {
            expect(images.every((image) => !image.isDisposed)).toBe(true);
            scoreCalls.push({ prompt, options });
            return scores[questionOf(prompt)];
          },
        }
      : {}),
  };
  return model;
}

const mmmbRows: BenchmarkRowInput[] = [
  { index: 0, question: 'q0', options: { A: 'apple', B: 'banana' }, answer: 'A', category: 'cat1', l2Category: 'X', language: 'en', image: IMAGE },
  { index: 1, question: 'q1', options: { A: 'apple', B: 'banana' }, answer: 'A', category: 'cat2', l2Category: 'X', language: 'en', image: { reference: 0 } },
  { index: 2, question: 'q2', options: { A: 'maçã', B: 'banana' }, answer: 'B', category: 'cat1', l2Category: 'Y', language: 'pt', image: { reference: 0 } },
  { index: 3, question: 'q3', options: { A: 'maçã', B: 'banana', C: 'uva' }, answer: 'B', category: 'cat2', l2Category: 'Y', language: 'pt', image: { reference: 0 } },
];
const mmmbReplies = { q0: 'A', q1: 'B', q2: 'É uma banana', q3: 'não sei' };

describe('evaluate: MMMB single pass', () => {
  it('scores letters, option texts and the log-likelihood fallback; reports by language and category', async () => {
    const model = scriptedModel(mmmbReplies, { q3: [-3, -0.5, -2] });
    const before = tf.memory().numTensors;
    const result = await evaluate({ model, datasets: [{ source: writeTsv(mmmbRows), name: 'mmmb_mix' }] });
    expect(tf.memory().numTensors).toBe(before);

    expect(result.rows.map((row) => [row.index, row.prediction, row.method, row.correct])).toEqual([
      [0, 'A', 'letter', true],
      [1, 'B', 'letter', false],
      [2, 'B', 'text', true],
      [3, 'B', 'loglikelihood', true],
    ]);
    expect(result.rows[3].optionScores).toEqual([-3, -0.5, -2]);
    expect(model.scoreCalls).toHaveLength(1);
    expect(model.scoreCalls[0].options.map((o) => o.letter)).toEqual(['A', 'B', 'C']);

    // The model saw [H, W, 3] tensors with the pixels, and localized prompts.
    for (const call of model.calls) {
      expect(call.shapes).toEqual([[1, 2, 3]]);
      expect(call.pixels[0]).toEqual(Array.from(IMAGE.data));
    }
    expect(model.calls[0].prompt).toBe(`q0\nA. apple\nB. banana\n${ANSWER_INSTRUCTIONS.en}`);
    expect(model.calls[3].prompt).toBe(`q3\nA. maçã\nB. banana\nC. uva\n${ANSWER_INSTRUCTIONS.pt}`);

    const { report } = result;
    expect(result.datasets).toEqual([
      {
        name: 'mmmb_mix', benchmark: 'MMMB', circular: false, rows: 4, questions: 4,
        // The header exactly as writeTsv wrote it (image included).
        columns: writeTsv(mmmbRows).split('\n')[0].split('\t'),
      },
    ]);
    expect(report.overall).toEqual({ correct: 3, total: 4, accuracy: 75 });
    expect(report.byLanguage).toEqual({ en: { correct: 1, total: 2, accuracy: 50 }, pt: { correct: 2, total: 2, accuracy: 100 } });
    expect(report.byCategory).toEqual({ cat1: { correct: 2, total: 2, accuracy: 100 }, cat2: { correct: 1, total: 2, accuracy: 50 } });
    expect(report.byL2Category).toEqual({ X: { correct: 1, total: 2, accuracy: 50 }, Y: { correct: 2, total: 2, accuracy: 100 } });
    expect(report.byBenchmarkLanguage.MMMB.pt.accuracy).toBe(100);
    expect(report.predictionMethods).toEqual({ letter: 2, text: 1, loglikelihood: 1 });
    expect(report.skippedRows).toBe(0);
  });

  it('scores unresolved answers as wrong when the model has no scoreOptions', async () => {
    const result = await evaluate({ model: scriptedModel(mmmbReplies), datasets: [{ source: writeTsv(mmmbRows) }] });
    expect(result.rows[3]).toMatchObject({ prediction: undefined, method: 'unresolved', correct: false });
    expect(result.report.overall.correct).toBe(2);
    expect(result.datasets[0].name).toBe('dataset-1');
  });

  it('uses the dataset-level language for rows without one, and the limit option', async () => {
    const rows = mmmbRows.map(({ language: _language, ...row }) => row);
    const model = scriptedModel(mmmbReplies);
    const result = await evaluate({ model, datasets: [{ source: writeTsv(rows), language: 'ar' }], language: 'tr', limit: 2 });
    expect(result.rows).toHaveLength(2);
    expect(model.calls[0].prompt.endsWith(ANSWER_INSTRUCTIONS.ar)).toBe(true);
    expect(result.report.byLanguage).toEqual({ ar: { correct: 1, total: 2, accuracy: 50 } });
  });

  it('validates options and the model result', async () => {
    const source = writeTsv(mmmbRows);
    await expect(evaluate({ model: {} as EvalModel, datasets: [{ source }] })).rejects.toThrow(/generate/);
    await expect(evaluate({ model: scriptedModel(mmmbReplies), datasets: [] })).rejects.toThrow(/non-empty/);
    await expect(evaluate({ model: scriptedModel(mmmbReplies), datasets: [{ source }], limit: 0 })).rejects.toThrow(/limit/);
    await expect(
      evaluate({ model: scriptedModel(mmmbReplies), datasets: [{ source, name: 'x' }, { source, name: 'x' }] }),
    ).rejects.toThrow(/two datasets are named "x"/);
    const badScores = scriptedModel(mmmbReplies, { q3: [0, Number.NaN, 1] });
    await expect(evaluate({ model: badScores, datasets: [{ source, name: 'd' }] })).rejects.toThrow(/row 3 of d: scoreOptions returned NaN for option B/);
    const shortScores = scriptedModel(mmmbReplies, { q3: [0, 1] });
    await expect(evaluate({ model: shortScores, datasets: [{ source }] })).rejects.toThrow(/one log-likelihood per option \(3\), got 2 values/);
    const nonString = { generate: () => 42 as unknown as string };
    await expect(evaluate({ model: nonString, datasets: [{ source }] })).rejects.toThrow(/must return a string, got number/);
  });

  it('a row the model cannot take (ModelInputError) is recorded with its message and scored wrong, and the run goes on; a bug still stops it', async () => {
    const tooLong = 'LlavaModel.forward: the spliced sequence has 80 tokens, more than tokenizer_model_max_length 64; shorten the prompt';
    const tooMany = 'WingsModel.chat: images must hold at most one image (the authors\' infer.py passes one), got 2';
    const scripted = scriptedModel(mmmbReplies, { q3: [-3, -0.5, -2] });
    // q1's generation and q3's option scoring (after an unresolved answer) fail as the input the model cannot take
    const model: EvalModel = {
      name: 'limited',
      generate: (prompt, images) => {
        if (prompt.startsWith('q1\n')) throw new ModelInputError(tooLong);
        return scripted.generate(prompt, images);
      },
      scoreOptions: async (prompt, images, options) => {
        if (prompt.startsWith('q3\n')) throw new ModelInputError(tooMany);
        return scripted.scoreOptions!(prompt, images, options);
      },
    };
    const before = tf.memory().numTensors;
    const source = writeTsv(mmmbRows);
    const result = await evaluate({ model, datasets: [{ source, name: 'mmmb_mix' }] });
    expect(tf.memory().numTensors).toBe(before);
    expect(result.rows.map((row) => [row.index, row.prediction, row.method, row.correct, row.error])).toEqual([
      [0, 'A', 'letter', true, undefined],
      [1, undefined, 'error', false, tooLong],
      [2, 'B', 'text', true, undefined],
      [3, undefined, 'error', false, tooMany],
    ]);
    expect([result.rows[1].generation, result.rows[1].processed, 'error' in result.rows[0]]).toEqual(['', '', false]);
    // every row was asked (the run went on past q1), and each error row counts as a wrong answer
    expect(scripted.calls.map((call) => call.prompt.split('\n')[0])).toEqual(['q0', 'q2', 'q3']);
    const { report } = result;
    expect(report.overall).toEqual({ correct: 2, total: 4, accuracy: 50 });
    expect(report.predictionMethods).toEqual({ letter: 1, text: 1, error: 2 });
    // lines: the header is line 1, row k ends on line k + 2
    expect([report.errorRows, report.errors]).toEqual([2, [
      { dataset: 'mmmb_mix', index: 1, line: 3, message: tooLong },
      { dataset: 'mmmb_mix', index: 3, line: 5, message: tooMany },
    ]]);
    // circular: a rotation the model cannot take makes its question wrong
    const rotated = await evaluate({
      model: { generate: (prompt) => { if (prompt.startsWith('q0\n')) throw new ModelInputError(tooLong); return 'A'; } },
      datasets: [{ source: writeTsv([mmmbRows[0], { ...mmmbRows[1], index: 1_000_000, image: IMAGE }]), circular: true }],
    });
    expect(rotated.questions.map((q) => [q.baseIndex, q.rotations, q.correct])).toEqual([[0, 2, false]]);
    // anything else is a bug and stops the run, whatever came before
    const buggy: EvalModel = {
      generate: (prompt, images) => {
        if (prompt.startsWith('q2\n')) throw new TypeError('cannot read properties of undefined');
        return model.generate(prompt, images);
      },
    };
    await expect(evaluate({ model: buggy, datasets: [{ source }] })).rejects.toThrow(/cannot read properties of undefined/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('disposes the image tensors when the model throws', async () => {
    const before = tf.memory().numTensors;
    const failing: EvalModel = {
      generate() {
        throw new Error('boom');
      },
    };
    await expect(evaluate({ model: failing, datasets: [{ source: writeTsv(mmmbRows) }] })).rejects.toThrow('boom');
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('evaluate: circular MMBench', () => {
  // Question 0 (3 rotations) is answered right every time; question 1 is wrong in one rotation;
  // question 2 has a single rotation answered right.
  const rotations = (base: number, answers: string[], category: string): BenchmarkRowInput[] =>
    answers.map((answer, k) => ({
      index: base + k * 1_000_000,
      question: `q${base}r${k}`,
      options: { A: 'one', B: 'two', C: 'three' },
      answer,
      category,
      l2Category: 'Perception',
      language: 'zh',
      image: k === 0 ? IMAGE : { reference: base },
    }));
  const rows = [...rotations(0, ['A', 'C', 'B'], 'coarse_perception'), ...rotations(1, ['B', 'A', 'C'], 'logic_reasoning'), ...rotations(2, ['C'], 'logic_reasoning')];
  const replies: Record<string, string> = {
    q0r0: 'A', q0r1: 'C', q0r2: '(B)',
    q1r0: 'B', q1r1: 'B', q1r2: 'C', // rotation 1 wrong
    q2r0: 'three',
  };

  it('auto-detects rotations; a question counts only if every rotation is right', async () => {
    const result = await evaluate({ model: scriptedModel(replies), datasets: [{ source: writeTsv(rows), name: 'mmbench_dev_cn' }] });
    expect(result.datasets[0]).toMatchObject({ name: 'mmbench_dev_cn', benchmark: 'MMBench', circular: true, rows: 7, questions: 3 });
    expect(result.questions.map((q) => [q.baseIndex, q.rotations, q.correct])).toEqual([
      [0, 3, true],
      [1, 3, false],
      [2, 1, true],
    ]);
    expect(result.report.overall).toEqual({ correct: 2, total: 3, accuracy: (100 * 2) / 3 });
    expect(result.report.byCategory.logic_reasoning).toEqual({ correct: 1, total: 2, accuracy: 50 });
    expect(result.report.byBenchmarkLanguage.MMBench.zh.correct).toBe(2);
  });

  it('can be switched off (each rotation its own question) or forced on', async () => {
    const off = await evaluate({ model: scriptedModel(replies), datasets: [{ source: writeTsv(rows) }], circular: false });
    expect(off.datasets[0]).toMatchObject({ circular: false, benchmark: 'MMMB', questions: 7 });
    expect(off.report.overall.correct).toBe(6);
    const perDataset = await evaluate({
      model: scriptedModel(mmmbReplies),
      datasets: [{ source: writeTsv(mmmbRows), circular: true, benchmark: 'MMBench' }],
      circular: false,
    });
    expect(perDataset.datasets[0]).toMatchObject({ circular: true, benchmark: 'MMBench', questions: 4 });
    expect(perDataset.report.overall.correct).toBe(2);
  });

  it('a rotation without its original is a bad row (error naming it, or skipped and counted)', async () => {
    const orphan = rows
      .filter((row) => row.index !== 1)
      .map((row) =>
        row.index === 1_000_001 ? { ...row, image: IMAGE } : row.index === 2_000_001 ? { ...row, image: { reference: 1_000_001 } } : row,
      );
    const source = writeTsv(orphan);
    const error = await evaluate({ model: scriptedModel(replies), datasets: [{ source }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRowError);
    expect((error as BadRowError).issue.rowIndex).toBe('1000001');
    expect((error as BadRowError).message).toMatch(/original \(index 1\) is missing/);
    const skipped = await evaluate({ model: scriptedModel(replies), datasets: [{ source }], onBadRow: 'skip' });
    expect(skipped.report.skippedRows).toBe(2);
    expect(skipped.report.skipped.map((issue) => issue.reason)).toEqual(['rotation-without-base', 'rotation-without-base']);
    expect(skipped.report.overall).toMatchObject({ correct: 2, total: 2 });
  });
});

describe('evaluate: bad rows', () => {
  it('skipped rows are counted in the report; the default is to throw naming the row', async () => {
    const rows: BenchmarkRowInput[] = [
      ...mmmbRows,
      { index: 4, question: 'q4', options: { A: 'x', B: 'y' }, answer: 'E', image: { reference: 0 } },
      { index: 5, question: 'q5', options: { A: 'x', B: 'y' }, answer: 'A', image: { raw: '!'.repeat(100) } },
      { index: 6, question: 'q6', options: { A: 'x', B: 'y' }, answer: '' },
      { index: 7, question: 'q7', options: { A: 'x', B: 'y' }, answer: 'A', image: { reference: 99 } },
    ];
    const source = writeTsv(rows);
    await expect(evaluate({ model: scriptedModel(mmmbReplies), datasets: [{ source }] })).rejects.toThrow(/row index "4": answer "E"/);
    const result = await evaluate({ model: scriptedModel(mmmbReplies), datasets: [{ source, name: 'bad' }], onBadRow: 'skip' });
    expect(result.report.skippedRows).toBe(4);
    expect(result.report.skipped.map((issue) => [issue.rowIndex, issue.reason, issue.source])).toEqual([
      ['4', 'unknown-answer', 'bad'],
      ['5', 'bad-image', 'bad'],
      ['6', 'missing-answer', 'bad'],
      ['7', 'bad-image-reference', 'bad'],
    ]);
    expect(result.report.overall.total).toBe(4);
  });
});

describe('evaluate: predictOnly (a test split without answers)', () => {
  // A circular test split: no answer column, rotations present, one row without an original.
  const testRows = 'index\tquestion\tA\tB\tcategory\tL2-category\timage\n' +
    writeTsv([
      { index: 0, question: 'q0', options: { A: 'apple', B: 'banana' }, image: IMAGE },
      { index: 1_000_000, question: 'q1', options: { A: 'banana', B: 'apple' }, image: { reference: 0 } },
      { index: 2_000_005, question: 'q2', options: { A: 'maçã', B: 'banana' }, image: { reference: 0 } },
    ])
      .split('\n')
      .slice(1)
      .filter((line) => line !== '')
      // writeTsv's columns: index question hint A B answer category l2-category image → drop hint and answer.
      .map((line) => line.split('\t').filter((_, i) => i !== 2 && i !== 5).join('\t'))
      .join('\n') + '\n';

  it('predicts every row, scores nothing, and keeps the cells and header for the predictions file', async () => {
    const model = scriptedModel({ q0: 'A', q1: 'B. apple', q2: 'no idea' }, { q2: [-4, -1] });
    await expect(evaluate({ model, datasets: [{ source: testRows, name: 'mmbench_test_en' }] })).rejects.toThrow(
      /header has no 'answer' column .*--predict-only/,
    );
    const headers: Array<[string, readonly string[]]> = [];
    const result = await evaluate({
      model,
      datasets: [{ source: testRows, name: 'mmbench_test_en' }],
      predictOnly: true,
      onHeader: (dataset, columns) => headers.push([dataset, columns]),
    });
    expect(headers).toEqual([['mmbench_test_en', ['index', 'question', 'A', 'B', 'category', 'L2-category', 'image']]]);
    expect(result.rows.map((row) => [row.index, row.answer, row.processed, row.prediction, row.method, row.correct])).toEqual([
      [0, '', 'A', 'A', 'letter', false],
      [1_000_000, '', 'B', 'B', 'letter', false],
      [2_000_005, '', 'no idea', 'B', 'loglikelihood', false],
    ]);
    expect(result.rows[2].fields).toEqual({ index: '2000005', question: 'q2', A: 'maçã', B: 'banana', category: '', 'l2-category': '' });
    expect(result.questions).toEqual([]);
    expect(result.datasets[0]).toMatchObject({ rows: 3, questions: 0, circular: true, columns: headers[0][1] });
    expect(result.report.overall.total).toBe(0);
    expect(result.report.rowsEvaluated).toBe(3);
    expect(result.report.skippedRows).toBe(0);
  });
});

describe('helpers', () => {
  const options: OptionChoice[] = [
    { letter: 'A', text: 'a' },
    { letter: 'B', text: 'b' },
    { letter: 'C', text: 'c' },
  ];
  it('argmaxScore picks the first maximum and accepts -Infinity', () => {
    expect(argmaxScore([-1, -0.5, -0.5], options, 'w')).toBe(1);
    expect(argmaxScore([-Infinity, -Infinity, -7], options, 'w')).toBe(2);
    expect(() => argmaxScore([0, Infinity, 0], options, 'w')).toThrow(/returned Infinity for option B/);
  });

  it('scoreQuestions groups by base index and ignores order', () => {
    const row = (index: number, correct: boolean) => ({ index, baseIndex: index % 1_000_000, rotation: Math.floor(index / 1_000_000), correct, dataset: 'd' }) as RowResult;
    const { questions, orphans } = scoreQuestions([row(2_000_003, true), row(3, true), row(1_000_003, false), row(4, true)], true, 'MMBench');
    expect(questions.map((q) => [q.baseIndex, q.rotations, q.correct])).toEqual([[3, 3, false], [4, 1, true]]);
    expect(orphans).toEqual([]);
  });
});
