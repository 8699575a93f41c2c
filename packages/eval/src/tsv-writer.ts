/**
 * Writes benchmark TSVs in the format {@link readBenchmarkRows} (and VLMEvalKit) reads, so examples
 * and tests can build their own benchmark files.
 */
import { encodeBase64 } from './base64.js';
import { columnKey } from './benchmark-reader.js';
import { encodePng, type PixelImage } from '@mllm/models/image';

/** The image cell of a row to write. */
export type ImageInput =
  /** Pixels: written as a base64 PNG. */
  | PixelImage
  /** Already-encoded PNG/JPEG bytes: written as base64. */
  | Uint8Array
  /** Reuse the image of the row with this index. */
  | { readonly reference: number }
  /** A raw cell value written verbatim (base64 text, or anything for negative tests). */
  | { readonly raw: string };

/** A row to write. Unset optional fields become empty cells. */
export interface BenchmarkRowInput {
  readonly index: number;
  readonly question: string;
  readonly hint?: string;
  /** Options by letter (`{ A: 'cat', B: 'dog' }`); a missing or undefined letter gives an empty cell. */
  readonly options: Readonly<Record<string, string | undefined>>;
  readonly answer?: string;
  readonly category?: string;
  readonly l2Category?: string;
  readonly split?: string;
  readonly language?: string;
  readonly image?: ImageInput;
  /** Extra columns. */
  readonly extra?: Readonly<Record<string, string>>;
}

/** Quotes a cell when it contains a tab, newline, carriage return or double quote (pandas' QUOTE_MINIMAL). */
export function formatTsvCell(value: string): string {
  return /[\t\n\r"]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function imageCell(image: ImageInput | undefined): string {
  if (image === undefined) return '';
  if (image instanceof Uint8Array) return encodeBase64(image);
  if ('reference' in image) return String(image.reference);
  if ('raw' in image) return image.raw;
  return encodeBase64(encodePng(image));
}

/**
 * Serializes rows to TSV text with a header. Columns: `index`, `question`, `hint`, the option
 * letters used by any row (A…), `answer`, `category`, `l2-category`, `split`, `language` (only when
 * some row sets it), `image`, then extra columns in first-seen order.
 */
export function writeTsv(rows: readonly BenchmarkRowInput[]): string {
  const letters = new Set<string>(['A', 'B']);
  const extraColumns: string[] = [];
  let anyLanguage = false;
  let anySplit = false;
  for (const row of rows) {
    for (const letter of Object.keys(row.options)) {
      if (!/^[A-Z]$/.test(letter)) throw new TypeError(`row ${row.index}: option keys must be single letters A–Z, got ${JSON.stringify(letter)}`);
      letters.add(letter);
    }
    if (row.language !== undefined) anyLanguage = true;
    if (row.split !== undefined) anySplit = true;
    for (const name of Object.keys(row.extra ?? {})) if (!extraColumns.includes(name)) extraColumns.push(name);
  }
  const optionLetters = [...letters].sort();
  const columns = [
    'index', 'question', 'hint', ...optionLetters, 'answer', 'category', 'l2-category',
    ...(anySplit ? ['split'] : []), ...(anyLanguage ? ['language'] : []), 'image', ...extraColumns,
  ];
  const lines = [columns.map(formatTsvCell).join('\t')];
  for (const row of rows) {
    const cells = columns.map((column) => {
      switch (column) {
        case 'index': return String(row.index);
        case 'question': return row.question;
        case 'hint': return row.hint ?? '';
        case 'answer': return row.answer ?? '';
        case 'category': return row.category ?? '';
        case 'l2-category': return row.l2Category ?? '';
        case 'split': return row.split ?? '';
        case 'language': return row.language ?? '';
        case 'image': return imageCell(row.image);
        default:
          if (optionLetters.includes(column)) return row.options[column] ?? '';
          return row.extra?.[column] ?? '';
      }
    });
    lines.push(cells.map(formatTsvCell).join('\t'));
  }
  return lines.join('\n') + '\n';
}

/** What {@link predictionsToTsv} needs of a row result (`RowResult` has it). */
export interface PredictionRow {
  /** The row's cells by column key (`RowResult.fields`). */
  readonly fields: Readonly<Record<string, string>>;
  /** The post-processed answer: what the Parrot VLMEvalKit wrapper returns as the model's response. */
  readonly processed: string;
}

/**
 * The predictions of one benchmark file in its submission format, VLMEvalKit's result file
 * (`infer_data_job` writes the dataset's rows with `image` dropped and a `prediction` column added,
 * `<model>_<dataset>.xlsx`): the file's own columns in header order and spelling, `image` left out,
 * then `prediction` holding the model's post-processed answer (an existing `prediction` column is
 * overwritten in place). One line per row, in the order given. TSV with pandas' minimal quoting, so
 * `pandas.read_csv(path, sep='\t')` reads it back (and `to_excel` makes the `.xlsx` a leaderboard wants).
 */
export function predictionsToTsv(columns: readonly string[], rows: readonly PredictionRow[]): string {
  const kept = columns.filter((name) => columnKey(name) !== 'image');
  const output = kept.some((name) => columnKey(name) === 'prediction') ? kept : [...kept, 'prediction'];
  const lines = [output.map(formatTsvCell).join('\t')];
  for (const row of rows) {
    const cells = output.map((name) => {
      const key = columnKey(name);
      return key === 'prediction' ? row.processed : (row.fields[key] ?? '');
    });
    lines.push(cells.map(formatTsvCell).join('\t'));
  }
  return lines.join('\n') + '\n';
}
