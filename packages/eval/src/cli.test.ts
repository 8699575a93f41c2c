import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './cli-main.js';
import { registerModelLoader } from './eval-model.js';
import type { HostModelLike } from './host-model-adapter.js';
import { ANSWER_INSTRUCTIONS } from './languages.js';
import { writeTsv, type BenchmarkRowInput } from './tsv-writer.js';

const directory = mkdtempSync(join(tmpdir(), 'mllm-eval-cli-'));
afterAll(() => {
  // Leave the temp directory to the OS; nothing large is written.
});

const IMAGE = { height: 2, width: 2, data: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]) };

// A fake model as a JS module: answers with the letter of the option whose text is "right", or
// "no idea" when the question says "unsure" (then the log-likelihood fallback decides).
const MODEL_MODULE = `
export const prompts = [];
export default {
  name: 'fake-module-model',
  generate(prompt, images) {
    if (images.length !== 1 || images[0].shape.join(',') !== '2,2,3') throw new Error('unexpected images ' + images.map((i) => i.shape));
    prompts.push(prompt);
    if (prompt.startsWith('unsure')) return 'no idea';
    const match = /\\n([A-Z])\\. right(\\n|$)/.exec(prompt);
    return match ? match[1] : 'no idea';
  },
  scoreOptions(prompt, images, options) {
    return options.map((option) => (option.text === 'right' ? -1 : -5));
  },
};
`;
const modelPath = join(directory, 'fake-model.mjs');
writeFileSync(modelPath, MODEL_MODULE);
const factoryPath = join(directory, 'factory-model.cjs');
writeFileSync(
  factoryPath,
  `exports.createModel = (path) => ({ name: 'factory:' + require('node:path').basename(path), generate: () => 'A' });\n`,
);

// MMMB Portuguese file without a language column: 3 questions, the model gets 2 right
// (one via the log-likelihood fallback), the third's answer column disagrees with "right".
const mmmbRows: BenchmarkRowInput[] = [
  { index: 0, question: 'q0', options: { A: 'right', B: 'wrong' }, answer: 'A', category: 'c1', image: IMAGE },
  { index: 1, question: 'unsure q1', options: { A: 'wrong', B: 'right' }, answer: 'B', category: 'c1', image: { reference: 0 } },
  { index: 2, question: 'q2', options: { A: 'right', B: 'wrong' }, answer: 'B', category: 'c2', image: { reference: 0 } },
];
const mmmbPath = join(directory, 'mmmb_pt.tsv');
writeFileSync(mmmbPath, writeTsv(mmmbRows));

// Circular MMBench English file: question 0 right in both rotations, question 1 wrong in one.
const mmbenchRows: BenchmarkRowInput[] = [
  { index: 0, question: 'm0', options: { A: 'right', B: 'wrong' }, answer: 'A', language: 'en', category: 'coarse_perception', image: IMAGE },
  { index: 1_000_000, question: 'm0', options: { A: 'wrong', B: 'right' }, answer: 'B', language: 'en', category: 'coarse_perception', image: { reference: 0 } },
  { index: 1, question: 'm1', options: { A: 'right', B: 'wrong' }, answer: 'A', language: 'en', category: 'logic_reasoning', image: { reference: 0 } },
  { index: 1_000_001, question: 'm1', options: { A: 'right', B: 'wrong' }, answer: 'B', language: 'en', category: 'logic_reasoning', image: { reference: 0 } },
];
const mmbenchPath = join(directory, 'mmbench_dev_en.tsv');
writeFileSync(mmbenchPath, writeTsv(mmbenchRows));

function io(isTTY = false) {
  const out: string[] = [];
  const err: string[] = [];
  let time = 0;
  return {
    out,
    err,
    io: {
      stdout: { isTTY: false, write: (text: string) => out.push(text) },
      stderr: { isTTY, columns: 200, write: (text: string) => err.push(text) },
      hostLoader: async () => undefined,
      now: () => (time += 500),
    },
  };
}

describe('mllm-eval CLI', () => {
  it('evaluates a module model on an MMMB and a circular MMBench file and writes all reports', async () => {
    const outDir = join(directory, 'run1');
    const { out, err, io: cliIo } = io(false);
    const code = await runCli(['--model', modelPath, '--data', `pt=${mmmbPath}`, '--data', mmbenchPath, '--out', outDir], cliIo);
    expect(err.join('')).not.toMatch(/mllm-eval:/);
    expect(code).toBe(0);
    // 3 MMMB questions (2 right) + 2 circular MMBench questions (1 right) = 3 / 5.
    expect(out.join('')).toContain('overall accuracy 60.00% (3/5 questions, 7 rows, 0 skipped)');
    for (const file of ['report.md', 'report.csv', 'report.json', 'comparison.md', 'predictions.jsonl']) {
      expect(existsSync(join(outDir, file))).toBe(true);
    }
    const report = JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8'));
    expect(report.model).toBe('fake-module-model');
    expect(report.byDataset.mmmb_pt).toMatchObject({ correct: 2, total: 3, benchmark: 'MMMB', circular: false });
    expect(report.byDataset.mmbench_dev_en).toMatchObject({ correct: 1, total: 2, benchmark: 'MMBench', circular: true });
    expect(report.byLanguage.pt).toMatchObject({ correct: 2, total: 3 });
    expect(report.predictionMethods).toEqual({ letter: 6, loglikelihood: 1 });
    const predictions = readFileSync(join(outDir, 'predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(predictions).toHaveLength(7);
    // The pt= prefix set the language of the language-less MMMB rows: Portuguese instruction.
    expect(predictions[0].prompt).toBe(`q0\nA. right\nB. wrong\n${ANSWER_INSTRUCTIONS.pt}`);
    expect(readFileSync(join(outDir, 'comparison.md'), 'utf8')).toContain('| **fake-module-model** | – | – | **66.67** |');
    expect(readFileSync(join(outDir, 'report.md'), 'utf8')).toContain('coarse_perception (CP)');
    expect(readFileSync(join(outDir, 'report.csv'), 'utf8')).toContain('dataset,mmbench_dev_en,1,2,50');
    // Non-TTY progress: plain lines ending with the final count.
    const progress = err.join('');
    expect(progress).not.toContain('\r');
    expect(progress.trim().split('\n').at(-1)).toMatch(/^progress: evaluating 7\/7 100\.0% /);
  });

  it('draws a redrawn progress line on a TTY and honours --limit and --no-progress', async () => {
    const tty = io(true);
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run2'), '--limit', '2', mmbenchPath], tty.io)).toBe(0);
    expect(tty.err.join('')).toContain('\r\x1b[2Kevaluating [####################] 2/2 100.0%');
    expect(tty.out.join('')).toContain('(1/1 questions, 2 rows, 0 skipped)');
    const quiet = io(true);
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run3'), '--no-progress', mmbenchPath], quiet.io)).toBe(0);
    expect(quiet.err).toEqual([]);
  });

  it('supports --circular off, --benchmark and --instruction reference', async () => {
    const { out, io: cliIo } = io();
    const outDir = join(directory, 'run4');
    const code = await runCli(
      ['--model', modelPath, '--out', outDir, '--circular', 'off', '--benchmark', 'mmbench', '--instruction', 'reference', '--no-progress', mmmbPath],
      cliIo,
    );
    expect(code).toBe(0);
    expect(out.join('')).toContain('(2/3 questions');
    const report = JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8'));
    expect(report.byDataset.mmmb_pt).toMatchObject({ benchmark: 'MMBench', circular: false });
    const predictions = readFileSync(join(outDir, 'predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    // Reference rule: the file name suffix _pt picks Portuguese although the rows have no language.
    expect(predictions[0].prompt.endsWith(ANSWER_INSTRUCTIONS.pt)).toBe(true);
  });

  it('reports bad rows by index, or skips and counts them with --on-bad-row skip', async () => {
    const badPath = join(directory, 'bad.tsv');
    writeFileSync(badPath, writeTsv([...mmmbRows, { index: 7, question: 'q7', options: { A: 'right', B: 'x' }, answer: 'Q', image: { reference: 0 } }]));
    const failing = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run5'), '--no-progress', badPath], failing.io)).toBe(1);
    expect(failing.err.join('')).toMatch(/bad row: .*bad\.tsv:\d+: row index "7": answer "Q" is not one of its options/);
    expect(failing.err.join('')).toContain('--on-bad-row skip');
    const skipping = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run6'), '--no-progress', '--on-bad-row', 'skip', badPath], skipping.io)).toBe(0);
    expect(skipping.out.join('')).toContain('1 skipped');
    const report = JSON.parse(readFileSync(join(directory, 'run6', 'report.json'), 'utf8'));
    expect(report.skippedRows).toBe(1);
    expect(report.skipped[0]).toMatchObject({ rowIndex: '7', reason: 'unknown-answer' });
  });

  it('rejects bad usage with exit code 2 and the usage text', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--data', mmmbPath, '--out', directory], /--model is required/],
      [['--model', modelPath, '--data', mmmbPath], /--out is required/],
      [['--model', modelPath, '--out', directory], /at least one --data/],
      [['--model', modelPath, '--out', directory, '--circular', 'maybe', mmmbPath], /--circular: expected one of auto, on, off, got "maybe"/],
      [['--model', modelPath, '--out', directory, '--limit', '0', mmmbPath], /--limit: expected a positive integer/],
      [['--model', modelPath, '--out', directory, '--language', 'fr', mmmbPath], /--language: expected one of en, zh/],
      [['--model', modelPath, '--out', directory, '--frobnicate', mmmbPath], /Unknown option '--frobnicate'/],
    ];
    for (const [argv, message] of cases) {
      const { err, io: cliIo } = io();
      expect(await runCli(argv, cliIo)).toBe(2);
      expect(err.join('')).toMatch(message);
      expect(err.join('')).toContain('Usage: mllm-eval');
    }
    const help = io();
    expect(await runCli(['--help'], help.io)).toBe(0);
    expect(help.out.join('')).toContain('Usage: mllm-eval');
  });

  it('fails clearly when the model cannot be loaded or a data file is missing', async () => {
    const checkpoint = join(directory, 'checkpoint');
    mkdirSync(checkpoint, { recursive: true });
    const noCore = io();
    expect(await runCli(['--model', checkpoint, '--out', join(directory, 'run7'), mmmbPath], noCore.io)).toBe(1);
    expect(noCore.err.join('')).toMatch(/@mllm\/models is not installed/);

    const missing = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run8'), join(directory, 'absent.tsv')], missing.io)).toBe(1);
    expect(missing.err.join('')).toMatch(/--data: no such file/);

    const badBackend = io();
    expect(await runCli(['--model', modelPath, '--backend', 'abacus', '--out', join(directory, 'run14'), mmmbPath], badBackend.io)).toBe(1);
    expect(badBackend.err.join('')).toMatch(/backend: expected one of cpu, wasm, webgpu, got "abacus"/);

    const notAModel = join(directory, 'not-a-model.mjs');
    writeFileSync(notAModel, 'export const something = 1;\n');
    const bad = io();
    expect(await runCli(['--model', notAModel, '--out', join(directory, 'run9'), mmmbPath], bad.io)).toBe(1);
    expect(bad.err.join('')).toMatch(/exports none of default, createModel, model/);
  });

  it('loads checkpoints through @mllm/models loadHostModel when present, and through registered loaders', async () => {
    const checkpoint = join(directory, 'checkpoint');
    mkdirSync(checkpoint, { recursive: true });
    const seen: string[] = [];
    const shapes: number[][] = [];
    const prompts: string[] = [];
    const hostModel: HostModelLike = {
      visionTower: { visionConfig: { imageSize: 4, imageMean: [0.5, 0.5, 0.5] } },
      generate(prompt, images) {
        prompts.push(prompt);
        shapes.push(images ? images.shape : []);
        return { texts: ['A'] };
      },
    };
    const withHost = io();
    const code = await runCli(['--model', checkpoint, '--out', join(directory, 'run10'), '--no-progress', mmmbPath], {
      ...withHost.io,
      hostLoader: async () => (spec: string) => {
        seen.push(spec);
        return hostModel;
      },
    });
    expect(code).toBe(0);
    expect(seen).toEqual([checkpoint]);
    expect(withHost.out.join('')).toContain('(1/3 questions');
    // The adapter put the image placeholder first and resized the 2×2 image to the tower's 4×4.
    expect(shapes).toEqual([[1, 4, 4, 3], [1, 4, 4, 3], [1, 4, 4, 3]]);
    expect(prompts[0].startsWith('<image>\nq0\nA. right')).toBe(true);
    expect(JSON.parse(readFileSync(join(directory, 'run10', 'report.json'), 'utf8')).model).toBe('checkpoint');

    const unregister = registerModelLoader((spec) => (spec === 'registered:tiny' ? { name: 'registered', generate: () => 'B' } : undefined));
    try {
      const registered = io();
      expect(await runCli(['--model', 'registered:tiny', '--out', join(directory, 'run11'), '--no-progress', mmmbPath], registered.io)).toBe(0);
      expect(JSON.parse(readFileSync(join(directory, 'run11', 'report.json'), 'utf8')).model).toBe('registered');
    } finally {
      unregister();
    }
    const factory = io();
    const factoryCode = await runCli(['--model', factoryPath, '--out', join(directory, 'run12'), '--no-progress', mmmbPath], factory.io);
    expect(factory.err.join('')).toBe('');
    expect(factoryCode).toBe(0);
    expect(JSON.parse(readFileSync(join(directory, 'run12', 'report.json'), 'utf8')).model).toBe('factory:factory-model.cjs');
  });

  it('runs as a process through the bin entry (shebang file)', async () => {
    const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const outDir = join(directory, 'run13');
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', cli, '--model', modelPath, '--data', `pt=${mmmbPath}`, '--out', outDir],
      { cwd: fileURLToPath(new URL('../../..', import.meta.url)) },
    );
    expect(stdout).toContain('overall accuracy 66.67% (2/3 questions, 3 rows, 0 skipped)');
    expect(stderr).toMatch(/progress: evaluating 3\/3 100\.0%/);
    // The cpu backend's one-time "install tfjs-node" hint is not printed (the CLI chose cpu itself).
    expect(stderr).not.toMatch(/looks like you are running TensorFlow\.js/);
    expect(stderr.trim().split('\n').every((line) => line.startsWith('progress: '))).toBe(true);
    expect(existsSync(join(outDir, 'report.md'))).toBe(true);
  });

  it('prints no tfjs hint when the model module stores weights on cpu while it loads', async () => {
    const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));
    const weightsModel = fileURLToPath(new URL('./__fixtures__/weights-model.mjs', import.meta.url));
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', cli, '--model', weightsModel, '--no-progress', '--data', `pt=${mmmbPath}`, '--out', join(directory, 'run15')],
      { cwd: fileURLToPath(new URL('../../..', import.meta.url)) },
    );
    expect(stdout).toContain('overall accuracy 33.33% (1/3 questions');
    expect(stderr).toBe('');
  });
});

describe('mllm-eval CLI: input errors', () => {
  const noStack = /\n\s+at /;

  it('--data with an unsupported language prefix names the known codes (a file with that literal name still works)', async () => {
    const { err, io: cliIo } = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run20'), '--data', 'fr=tiny.tsv'], cliIo)).toBe(2);
    expect(err.join('')).toMatch(/--data fr=tiny\.tsv: unknown language code "fr" before '='; known: en, zh \(cn\), pt, ar, tr, ru/);
    const literal = join(directory, 'fr=literal.tsv');
    writeFileSync(literal, writeTsv(mmmbRows));
    const ok = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run21'), '--no-progress', '--data', literal], ok.io)).toBe(0);
    // An absolute path starts with '/', so only a relative literal name could collide; `cn=` is still Chinese.
    const chinese = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run22'), '--no-progress', '--data', `cn=${mmmbPath}`], chinese.io)).toBe(0);
    expect(JSON.parse(readFileSync(join(directory, 'run22', 'report.json'), 'utf8')).byLanguage).toHaveProperty('zh');
  });

  it('a short row stops the run with the cell count, and the rows generated before it are written', async () => {
    const lines = writeTsv(mmmbRows).split('\n');
    lines[3] = lines[3].split('\t').slice(0, -1).join('\t'); // index 2 loses its image cell
    const shortPath = join(directory, 'short_pt.tsv');
    writeFileSync(shortPath, lines.join('\n'));
    const header = lines[0].split('\t').length;
    const outDir = join(directory, 'run23');
    const { err, io: cliIo } = io();
    expect(await runCli(['--model', modelPath, '--out', outDir, '--no-progress', shortPath], cliIo)).toBe(1);
    const message = err.join('');
    expect(message).toContain(`short_pt.tsv:4: row index "2": row 3 has ${header - 1} cells, the header has ${header}`);
    expect(message).not.toMatch(/has no answer/);
    expect(message).toContain(`the 2 rows generated before it are in ${outDir}: predictions.jsonl, short_pt_predictions.tsv`);
    expect(message).not.toMatch(noStack);
    const saved = readFileSync(join(outDir, 'predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(saved.map((row) => [row.index, row.prediction])).toEqual([[0, 'A'], [1, 'B']]);
    expect(saved[0]).not.toHaveProperty('fields');
    expect(readFileSync(join(outDir, 'short_pt_predictions.tsv'), 'utf8').split('\n')[2]).toBe('1\tunsure q1\t\twrong\tright\tB\tc1\t\tno idea');
    expect(existsSync(join(outDir, 'report.md'))).toBe(false);
  });

  it('an unterminated quote names the file and line without a stack; --on-bad-row skip skips it', async () => {
    const broken = join(directory, 'quote_pt.tsv');
    const lines = writeTsv(mmmbRows).split('\n');
    lines[2] = lines[2].replace('unsure q1', '"unsure q1');
    writeFileSync(broken, lines.join('\n'));
    const failing = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run24'), '--no-progress', broken], failing.io)).toBe(1);
    expect(failing.err.join('')).toMatch(/bad row: .*quote_pt\.tsv:3: row index "": unterminated quote: .* lines 3–\d+ \(to the end of the input\)/);
    expect(failing.err.join('')).not.toMatch(noStack);
    expect(failing.err.join('')).not.toMatch(/CsvError|CSV_QUOTE/);
    const skipping = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run25'), '--no-progress', '--on-bad-row', 'skip', broken], skipping.io)).toBe(0);
    expect(skipping.out.join('')).toContain('(1/1 questions, 1 rows, 1 skipped)');
    const report = JSON.parse(readFileSync(join(directory, 'run25', 'report.json'), 'utf8'));
    expect(report.skipped[0]).toMatchObject({ reason: 'unterminated-quote', line: 3 });
  });

  it('header errors (a missing column) print the message only, no TypeError stack', async () => {
    const noQuestion = join(directory, 'noquestion.tsv');
    writeFileSync(noQuestion, 'index\tA\tB\tanswer\n0\ta\tb\tA\n');
    const { err, io: cliIo } = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run26'), '--no-progress', noQuestion], cliIo)).toBe(1);
    expect(err.join('')).toBe(`\nmllm-eval: ${noQuestion}:1: the header has no 'question' column; expected at least index, question, answer and option columns A, B, …, got ["index", "A", "B", "answer"]\n`);
  });

  it('a 5 MB bad cell is quoted as a short prefix', async () => {
    const huge = join(directory, 'huge.tsv');
    writeFileSync(huge, `index\tquestion\tA\tB\tanswer\n0\tq\ta\tb\t${'C'.repeat(5_000_000)}\n`);
    const { err, io: cliIo } = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run27'), '--no-progress', huge], cliIo)).toBe(1);
    expect(err.join('').length).toBeLessThan(400);
    expect(err.join('')).toContain(`answer "${'C'.repeat(40)}…" (5,000,000 characters) is not one of its options A, B`);
  });

  it('--predict-only runs a test split without answers and writes the submission TSV; without it the header error says so', async () => {
    // A circular test split as VLMEvalKit ships it: no answer column.
    const testPath = join(directory, 'mmbench_test_en.tsv');
    const rows = mmbenchRows.map(({ answer: _answer, ...row }) => row);
    const text = writeTsv(rows)
      .split('\n')
      .map((line) => line.split('\t').filter((_, i, cells) => cells.length === 1 || i !== 5).join('\t'))
      .join('\n');
    expect(text.split('\n')[0]).toBe('index\tquestion\thint\tA\tB\tcategory\tl2-category\tlanguage\timage');
    writeFileSync(testPath, text);

    const scored = io();
    expect(await runCli(['--model', modelPath, '--out', join(directory, 'run28'), '--no-progress', testPath], scored.io)).toBe(1);
    expect(scored.err.join('')).toMatch(/the header has no 'answer' column \(a test split without answers .*mllm-eval --predict-only\)/);
    expect(scored.err.join('')).not.toMatch(noStack);

    const outDir = join(directory, 'run29');
    const { out, err, io: cliIo } = io();
    expect(await runCli(['--model', modelPath, '--out', outDir, '--no-progress', '--predict-only', testPath], cliIo)).toBe(0);
    expect(err).toEqual([]);
    expect(out.join('')).toBe(
      `predictions for 4 rows (0 skipped), not scored (--predict-only)\n` +
        `written to ${outDir}: predictions.jsonl, mmbench_test_en_predictions.tsv, report.json\n`,
    );
    const tsv = readFileSync(join(outDir, 'mmbench_test_en_predictions.tsv'), 'utf8');
    expect(tsv).toBe(
      [
        'index\tquestion\thint\tA\tB\tcategory\tl2-category\tlanguage\tprediction',
        '0\tm0\t\tright\twrong\tcoarse_perception\t\ten\tA',
        '1000000\tm0\t\twrong\tright\tcoarse_perception\t\ten\tB',
        '1\tm1\t\tright\twrong\tlogic_reasoning\t\ten\tA',
        '1000001\tm1\t\tright\twrong\tlogic_reasoning\t\ten\tA',
        '',
      ].join('\n'),
    );
    expect(existsSync(join(outDir, 'report.md'))).toBe(false);
    expect(JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8'))).toMatchObject({ rowsEvaluated: 4, skippedRows: 0, overall: { total: 0 } });
  });
});
