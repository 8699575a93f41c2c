import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BadRowError, BenchmarkFormatError, previewCell, shortenCell, type BadRowIssue } from './bad-row.js';
import { columnKey, PANDAS_MISSING_VALUES, readBenchmarkRows, type BenchmarkRow, type ReadBenchmarkOptions } from './benchmark-reader.js';
import type { PixelImage } from '@mllm/models/image';
import type { TsvSource } from './tsv-source.js';
import { writeTsv, type BenchmarkRowInput } from './tsv-writer.js';

const FIXTURE = fileURLToPath(new URL('./__fixtures__/mini-mmmb.tsv', import.meta.url));

async function readAll(source: TsvSource, options?: ReadBenchmarkOptions): Promise<BenchmarkRow[]> {
  const rows: BenchmarkRow[] = [];
  for await (const row of readBenchmarkRows(source, options)) rows.push(row);
  return rows;
}

async function firstError(source: TsvSource, options?: ReadBenchmarkOptions): Promise<BadRowError> {
  try {
    await readAll(source, options);
  } catch (error) {
    if (error instanceof BadRowError) return error;
    throw error;
  }
  throw new Error('expected a BadRowError');
}

/** 2×1 image: pure red then a 40% grey (8-bit exact). */
const RED_GREY: PixelImage = { height: 1, width: 2, data: Float32Array.from([1, 0, 0, 0.4, 0.4, 0.4]) };
/** 1×1 blue image. */
const BLUE: PixelImage = { height: 1, width: 1, data: Float32Array.from([0, 0, 1]) };

const base = (index: number, extra: Partial<BenchmarkRowInput> = {}): BenchmarkRowInput => ({
  index,
  question: `question ${index}`,
  options: { A: 'alpha', B: 'beta' },
  answer: 'A',
  ...extra,
});

describe('readBenchmarkRows: the fixture file', () => {
  it('reads a file path: pixels, references both ways, missing options, languages, quoted hint', async () => {
    const rows = await readAll(FIXTURE);
    // Row 2 references row 5, which comes later: it is yielded right after row 5.
    expect(rows.map((row) => row.index)).toEqual([1, 3, 5, 2]);
    const byIndex = new Map(rows.map((row) => [row.index, row]));
    // The embedded PNG is 2×2: red, green / blue, white.
    const expected = [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1];
    for (const index of [1, 2, 3, 5]) {
      const row = byIndex.get(index) as BenchmarkRow;
      expect(row.images).toHaveLength(1);
      expect([row.images[0].height, row.images[0].width]).toEqual([2, 2]);
      expect(Array.from(row.images[0].data)).toEqual(expected);
    }
    expect(byIndex.get(2)?.imageReference).toBe(5);
    expect(byIndex.get(3)?.imageReference).toBe(1);
    expect(byIndex.get(1)?.imageReference).toBeUndefined();
    // 'nan' and empty options are dropped.
    expect(byIndex.get(1)?.options).toEqual([
      { letter: 'A', text: 'red' },
      { letter: 'B', text: 'green' },
      { letter: 'C', text: 'blue' },
    ]);
    expect(byIndex.get(2)?.options.map((o) => o.letter)).toEqual(['A', 'B']);
    expect(byIndex.get(3)?.options.map((o) => o.text)).toEqual(['红色', '绿色']);
    // Languages: cn is normalized to zh.
    expect(rows.map((row) => [row.index, row.language])).toEqual([[1, 'en'], [3, 'zh'], [5, 'ru'], [2, 'pt']]);
    expect(byIndex.get(2)?.hint).toBe('Dica: a imagem tem "quatro" pixels');
    expect(byIndex.get(1)?.hint).toBeUndefined();
    expect(byIndex.get(1)?.category).toBe('colour');
    expect(byIndex.get(1)?.l2Category).toBe('perception');
    expect(byIndex.get(5)?.line).toBe(5);
    expect(byIndex.get(1)?.source).toBe(FIXTURE);
  });

  it('can skip decoding and keep only the base64 text', async () => {
    const rows = await readAll(FIXTURE, { decodeImages: false });
    expect(rows.every((row) => row.images.length === 0)).toBe(true);
    expect(rows[0].imageBase64?.startsWith('iVBORw0KGgo')).toBe(true);
    expect(rows[1].imageBase64).toBe(rows[0].imageBase64);
  });

  it('uses a pluggable image decoder', async () => {
    const seen: number[] = [];
    const rows = await readAll(FIXTURE, {
      decodeImage: (bytes) => {
        seen.push(bytes.length);
        return BLUE;
      },
    });
    expect(rows.every((row) => row.images[0] === BLUE)).toBe(true);
    expect(seen.length).toBeGreaterThan(0);
  });
});

describe('readBenchmarkRows: sources', () => {
  const text = writeTsv([base(0, { image: RED_GREY }), base(1, { question: 'Ünïcödé 中文 ✓', image: { reference: 0 } })]);

  it('accepts TSV text, { text }, a Node Readable, a web ReadableStream and chunk iterables', async () => {
    const bytes = new TextEncoder().encode(text);
    // Split inside multi-byte characters on purpose: 7-byte chunks.
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.slice(i, i + 7));
    const sources: TsvSource[] = [
      text,
      { text },
      Readable.from(chunks.map((c) => Buffer.from(c))),
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(chunk);
          controller.close();
        },
      }),
      chunks,
      (async function* () {
        for (const chunk of chunks) yield chunk;
      })(),
    ];
    for (const source of sources) {
      const rows = await readAll(source);
      expect(rows.map((row) => row.question)).toEqual(['question 0', 'Ünïcödé 中文 ✓']);
      expect(Array.from(rows[1].images[0].data)).toEqual(Array.from(RED_GREY.data));
    }
  });

  it('reads CRLF line endings, a UTF-8 byte-order mark and { path } sources', async () => {
    const crlf = '\ufeff' + text.replace(/\n/g, '\r\n');
    const rows = await readAll({ text: crlf });
    expect(rows.map((row) => row.question)).toEqual(['question 0', 'Ünïcödé 中文 ✓']);
    expect(rows[0].index).toBe(0);
    expect(Array.from(rows[1].images[0].data)).toEqual(Array.from(RED_GREY.data));
    expect((await readAll({ path: FIXTURE })).length).toBe(4);
  });

  it('rejects unsupported sources and headers without required columns', async () => {
    await expect(readAll(42 as unknown as TsvSource)).rejects.toThrow(/source: expected a file path/);
    await expect(readAll('index\tquestion\tA\tB\n1\tq\ta\tb\n')).rejects.toThrow(/no 'answer' column/);
    await expect(readAll('index\tquestion\tanswer\n1\tq\tA\n')).rejects.toThrow(/no option columns/);
    await expect(readAll({ text: '' })).rejects.toThrow(/empty/);
    await expect(readAll('/nonexistent/benchmark.tsv')).rejects.toThrow(/ENOENT/);
  });
});

describe('readBenchmarkRows: row contents', () => {
  it('parses quoted cells with tabs, newlines and quotes; rotations; extra columns; option columns beyond D', async () => {
    const text = writeTsv([
      base(7, { question: 'line one\nline "two"\tafter tab', options: { A: 'a', B: 'b', C: 'c', D: 'd', E: 'e' }, answer: 'E' }),
      base(2_000_007, { extra: { source: 'web' }, split: 'dev' }),
    ]);
    const rows = await readAll(text);
    expect(rows[0].question).toBe('line one\nline "two"\tafter tab');
    expect(rows[0].options.map((o) => o.letter)).toEqual(['A', 'B', 'C', 'D', 'E']);
    expect(rows[0].answer).toBe('E');
    expect([rows[0].baseIndex, rows[0].rotation]).toEqual([7, 0]);
    expect([rows[1].index, rows[1].baseIndex, rows[1].rotation]).toEqual([2_000_007, 7, 2]);
    expect(rows[1].fields.source).toBe('web');
    expect(rows[1].split).toBe('dev');
    expect(rows[0].images).toEqual([]);
  });

  it('takes the language from the row, then the option; accepts a `lang` column', async () => {
    const withLanguage = writeTsv([base(0, { language: 'AR' }), base(1)]);
    const rows = await readAll(withLanguage, { language: 'tr' });
    expect(rows.map((row) => row.language)).toEqual(['ar', 'tr']);
    const withLang = 'index\tquestion\tA\tB\tanswer\tlang\n0\tq\ta\tb\tA\tcn\n';
    expect((await readAll(withLang))[0].language).toBe('zh');
    expect((await readAll(writeTsv([base(0)])))[0].language).toBeUndefined();
  });

  it('treats only "", nan and NaN as missing by default; the pandas list is opt-in', async () => {
    const text = writeTsv([base(0, { options: { A: 'None', B: 'NA', C: 'NaN', D: '' } })]);
    expect((await readAll(text))[0].options.map((o) => o.text)).toEqual(['None', 'NA']);
    const pandas = await readAll(writeTsv([base(0, { options: { A: 'x', B: 'None', C: 'y' } })]), {
      missingValues: PANDAS_MISSING_VALUES,
    });
    expect(pandas[0].options.map((o) => o.letter)).toEqual(['A', 'C']);
  });
});

describe('readBenchmarkRows: bad rows', () => {
  const cases: Array<[string, BenchmarkRowInput[] | string, string, RegExp]> = [
    ['missing answer', [base(0), base(1, { answer: '' })], '1', /has no answer/],
    ['unknown answer letter', [base(0), base(4, { answer: 'C' })], '4', /answer "C" is not one of its options A, B/],
    ['no options', [base(0), base(3, { options: { A: 'nan', B: '' } })], '3', /has no options/],
    ['broken base64', [base(0), base(9, { image: { raw: '#'.repeat(80) } })], '9', /image cannot be decoded: invalid base64/],
    ['base64 of a non-image', [base(0), base(8, { image: { raw: 'QUJD'.repeat(30) } })], '8', /unsupported image format/],
    ['reference to a missing row', [base(0, { image: RED_GREY }), base(6, { image: { reference: 77 } })], '6', /row "77", which does not exist/],
    ['reference to a row without image data', [base(0), base(5, { image: { reference: 0 } })], '5', /row 0, which holds no image data itself/],
    ['reference chain', [base(0, { image: RED_GREY }), base(1, { image: { reference: 0 } }), base(2, { image: { reference: 1 } })], '2', /row 1, which holds no image data itself/],
    ['duplicate index', [base(0), base(0)], '0', /appears more than once/],
    ['non-integer index', 'index\tquestion\tA\tB\tanswer\nq1\tq\ta\tb\tA\n', 'q1', /non-negative integer/],
    ['too many cells', 'index\tquestion\tA\tB\tanswer\n1\tq\ta\tb\tA\textra\n', '1', /row 1 has 6 cells, the header has 5$/],
  ];

  for (const [name, input, rowIndex, message] of cases) {
    it(`${name} → error naming row ${rowIndex}, or skipped and reported`, async () => {
      const text = typeof input === 'string' ? input : writeTsv(input);
      const error = await firstError(text);
      expect(error.issue.rowIndex).toBe(rowIndex);
      expect(error.message).toContain(`row index "${rowIndex}"`);
      expect(error.message).toMatch(message);

      const skipped: BadRowIssue[] = [];
      const rows = await readAll(text, { onBadRow: 'skip', onSkip: (issue) => skipped.push(issue) });
      expect(skipped.map((issue) => issue.rowIndex)).toContain(rowIndex);
      expect(rows.map((row) => String(row.index))).not.toContain(rowIndex === '0' && name === 'duplicate index' ? 'never' : rowIndex);
    });
  }

  it('keeps the first of duplicated rows when skipping', async () => {
    const rows = await readAll(writeTsv([base(0), base(0, { question: 'second' })]), { onBadRow: 'skip' });
    expect(rows.map((row) => row.question)).toEqual(['question 0']);
  });

  it('a reference to a row that is itself bad still resolves (the image is fine)', async () => {
    const text = writeTsv([base(1, { image: { reference: 0 } }), base(0, { answer: 'Q', image: BLUE })]);
    const skipped: BadRowIssue[] = [];
    const rows = await readAll(text, { onBadRow: 'skip', onSkip: (issue) => skipped.push(issue) });
    expect(rows.map((row) => row.index)).toEqual([1]);
    expect(Array.from(rows[0].images[0].data)).toEqual([0, 0, 1]);
    expect(skipped.map((issue) => [issue.rowIndex, issue.reason])).toEqual([['0', 'unknown-answer']]);
  });

  it('a reference to a broken image names the referencing row and the referenced one', async () => {
    const text = writeTsv([base(0, { image: { raw: 'A'.repeat(70) + '!' } }), base(1, { image: { reference: 0 } })]);
    const skipped: BadRowIssue[] = [];
    await readAll(text, { onBadRow: 'skip', onSkip: (issue) => skipped.push(issue) });
    expect(skipped.map((issue) => issue.rowIndex)).toEqual(['0', '1']);
    expect(skipped[1].message).toMatch(/image \(referenced row 0\) cannot be decoded/);
  });

  it('rejects an unknown policy', async () => {
    await expect(readAll(writeTsv([base(0)]), { onBadRow: 'ignore' as 'skip' })).rejects.toThrow(/onBadRow: expected 'error' or 'skip'/);
  });
});

describe('readBenchmarkRows: short rows, broken quoting, huge cells, headers', () => {
  it('rejects a row missing its last cells (the image) with the cell count, instead of scoring it text-only', async () => {
    const lines = writeTsv([base(0, { image: BLUE }), base(1, { image: BLUE }), base(2, { image: BLUE })]).split('\n');
    const header = lines[0].split('\t');
    expect(header.at(-1)).toBe('image');
    // Row 2 (index 1) loses its image cell: one cell fewer than the header.
    lines[2] = lines[2].split('\t').slice(0, -1).join('\t');
    const text = lines.join('\n');
    const error = await firstError(text);
    expect(error.issue).toMatchObject({ rowIndex: '1', line: 3, reason: 'column-count' });
    expect(error.message).toBe(`<text>:3: row index "1": row 2 has ${header.length - 1} cells, the header has ${header.length}`);

    const skipped: BadRowIssue[] = [];
    const rows = await readAll(text, { onBadRow: 'skip', onSkip: (issue) => skipped.push(issue) });
    expect(rows.map((row) => [row.index, row.images.length])).toEqual([[0, 1], [2, 1]]);
    expect(skipped.map((issue) => issue.reason)).toEqual(['column-count']);
  });

  const quoted = [
    'index\tquestion\tA\tB\tanswer',
    '0\tfirst\ta\tb\tA',
    '1\t"never closed\ta\tb\tA',
    '2\tswallowed\ta\tb\tA',
    '3\tswallowed too\ta\tb\tB',
  ].join('\n') + '\n';

  it('an unterminated quote is a bad row naming the source and the line it starts on, not a parser stack', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'mllm-eval-reader-')), 'broken_pt.tsv');
    writeFileSync(path, quoted);
    const error = await firstError(path);
    expect(error.issue).toMatchObject({ rowIndex: '', source: path, line: 3, reason: 'unterminated-quote' });
    expect(error.message).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: row index "": unterminated quote`));
    expect(error.message).toContain('lines 3–5 (to the end of the input) cannot be split into rows');
  });

  it('with onBadRow: skip the broken record is skipped and counted; rows before it are kept', async () => {
    const skipped: BadRowIssue[] = [];
    const rows = await readAll({ text: quoted }, { onBadRow: 'skip', onSkip: (issue) => skipped.push(issue) });
    expect(rows.map((row) => row.question)).toEqual(['first']);
    expect(skipped.map((issue) => [issue.reason, issue.line])).toEqual([['unterminated-quote', 3]]);
  });

  it('quotes only a short prefix of a huge bad cell, in the message and in the skipped issue', async () => {
    const huge = '7'.repeat(20) + 'x'.repeat(5_000_000);
    const text = `index\tquestion\tA\tB\tanswer\n${huge}\tq\ta\tb\tA\n1\tq\ta\tb\t${'Q'.repeat(3_000_000)}\n`;
    const error = await firstError(text);
    expect(error.issue.reason).toBe('bad-index');
    expect(error.message.length).toBeLessThan(300);
    const prefix = `${'7'.repeat(20)}${'x'.repeat(20)}…`;
    expect(error.message).toBe(
      `<text>:2: row index "${prefix}": index must be a non-negative integer, got "${prefix}" (5,000,020 characters)`,
    );
    const skipped: BadRowIssue[] = [];
    await readAll(text, { onBadRow: 'skip', onSkip: (issue) => skipped.push(issue) });
    expect(skipped.map((issue) => issue.reason)).toEqual(['bad-index', 'unknown-answer']);
    expect(skipped[0].rowIndex).toBe(`${'7'.repeat(20)}${'x'.repeat(20)}…`);
    for (const issue of skipped) expect(issue.message.length).toBeLessThan(300);
    expect(skipped[1].message).toContain('(3,000,000 characters) is not one of its options A, B');
  });

  it('header problems are BenchmarkFormatErrors naming the source and line, with a short header preview', async () => {
    const noAnswer = readAll({ path: FIXTURE.replace('mini-mmmb', 'nope') });
    await expect(noAnswer).rejects.toThrow(/ENOENT/);
    const cases: Array<[string, RegExp]> = [
      ['index\tquestion\tA\tB\n1\tq\ta\tb\n', /^<text>:1: the header has no 'answer' column \(a test split without answers .*--predict-only\); expected at least index, question, answer and option columns A, B, …, got \["index", "question", "A", "B"\]$/],
      ['index\tquestion\tanswer\n1\tq\tA\n', /^<text>:1: the header has no option columns/],
      [`${'h'.repeat(100_000)}\tquestion\tA\tanswer\n`, /no 'index' column.*"h{40}…" \(100,000 characters\)/],
      ['"index\tquestion\n', /^<text>:1: unterminated quote/],
    ];
    for (const [text, message] of cases) {
      const error = await readAll({ text }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(BenchmarkFormatError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message.length).toBeLessThan(400);
    }
    await expect(readAll({ text: '' })).rejects.toThrow(BenchmarkFormatError);
  });

  it('requireAnswers: false reads a test split (no answers, or no answer column); a present answer is still checked', async () => {
    const noColumn = 'index\tquestion\tA\tB\n0\tq0\ta\tb\n1\tq1\tc\td\n';
    const rows = await readAll(noColumn, { requireAnswers: false });
    expect(rows.map((row) => [row.index, row.answer])).toEqual([[0, ''], [1, '']]);
    const emptyAnswers = writeTsv([base(0, { answer: '' }), base(1, { answer: 'B' }), base(2, { answer: 'Q' })]);
    const skipped: BadRowIssue[] = [];
    const read = await readAll(emptyAnswers, { requireAnswers: false, onBadRow: 'skip', onSkip: (issue) => skipped.push(issue) });
    expect(read.map((row) => [row.index, row.answer])).toEqual([[0, ''], [1, 'B']]);
    expect(skipped.map((issue) => [issue.rowIndex, issue.reason])).toEqual([['2', 'unknown-answer']]);
    // With answers required, the missing answer names the way out.
    expect((await firstError(emptyAnswers)).message).toMatch(/has no answer \(a test split without answers .*--predict-only\)/);
  });

  it('reports the header as written through onHeader; columnKey maps names to field keys', async () => {
    const seen: string[][] = [];
    const rows = await readAll('Index\tQuestion\tA\tB\tAnswer\tL2_category\n0\tq\ta\tb\tA\tx\n', { onHeader: (h) => seen.push([...h]) });
    expect(seen).toEqual([['Index', 'Question', 'A', 'B', 'Answer', 'L2_category']]);
    expect(seen[0].map(columnKey)).toEqual(['index', 'question', 'A', 'B', 'answer', 'l2-category']);
    expect(rows[0].fields).toEqual({ index: '0', question: 'q', A: 'a', B: 'b', answer: 'A', 'l2-category': 'x' });
  });
});

describe('shortenCell / previewCell', () => {
  it('cut at a code point boundary and say how long the cell was', () => {
    expect(shortenCell('abc', 5)).toBe('abc');
    expect(shortenCell('😀😀😀', 2)).toBe('😀😀…');
    expect(previewCell('a"b')).toBe('"a\\"b"');
    expect(previewCell('x'.repeat(41))).toBe(`"${'x'.repeat(40)}…" (41 characters)`);
  });
});
