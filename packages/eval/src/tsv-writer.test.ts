import { describe, expect, it } from 'vitest';
import { readTsvRecords } from './tsv-source.js';
import { predictionsToTsv } from './tsv-writer.js';

async function records(text: string): Promise<string[][]> {
  const out: string[][] = [];
  for await (const record of readTsvRecords({ text })) out.push(record.fields);
  return out;
}

describe('predictionsToTsv', () => {
  it("writes the file's columns as written (image dropped) plus prediction; csv-parse reads back every cell", async () => {
    const columns = ['Index', 'question', 'hint', 'A', 'B', 'L2_category', 'image', 'comment'];
    const rows = [
      { fields: { index: '0', question: 'tab\there', hint: '', A: 'say "hi"', B: 'b', 'l2-category': 'x', comment: 'multi\nline' }, processed: 'A' },
      { fields: { index: '1000000', question: 'q', hint: 'h', A: 'a', B: 'b', 'l2-category': 'y', comment: '' }, processed: 'I think "B"\tmaybe' },
    ];
    const text = predictionsToTsv(columns, rows);
    expect(await records(text)).toEqual([
      ['Index', 'question', 'hint', 'A', 'B', 'L2_category', 'comment', 'prediction'],
      ['0', 'tab\there', '', 'say "hi"', 'b', 'x', 'multi\nline', 'A'],
      ['1000000', 'q', 'h', 'a', 'b', 'y', '', 'I think "B"\tmaybe'],
    ]);
    // Minimal quoting, as pandas writes: plain cells are not quoted.
    expect(text.split('\n')[0]).toBe('Index\tquestion\thint\tA\tB\tL2_category\tcomment\tprediction');
  });

  it('overwrites an existing prediction column in place and writes only a header for no rows', async () => {
    expect(predictionsToTsv(['index', 'prediction', 'A'], [{ fields: { index: '3', prediction: 'old', A: 'a' }, processed: 'new' }])).toBe(
      'index\tprediction\tA\n3\tnew\ta\n',
    );
    expect(predictionsToTsv(['index', 'image'], [])).toBe('index\tprediction\n');
  });
});
