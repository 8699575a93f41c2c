/**
 * Streaming reader for VLMEvalKit-style multiple-choice TSVs (MMBench, multilingual MMBench, MMMB).
 *
 * Columns (header names are case-insensitive except the option letters):
 * `index` (non-negative integer; rotated MMBench copies use `base + k·1,000,000`), `question`,
 * `hint`, option columns `A`…`Z` (missing / empty / `nan` options are dropped), `answer` (the
 * ground-truth letter), `category`, `l2-category`, `split`, `image` (base64 PNG/JPEG, or — when at
 * most 64 characters long — the `index` of another row whose image is reused), and an optional
 * `language` / `lang`. Other columns are kept in {@link BenchmarkRow.fields}.
 */
import { decodeBase64 } from './base64.js';
import {
  BadRowError,
  BenchmarkFormatError,
  previewCell,
  shortenCell,
  type BadRowIssue,
  type BadRowPolicy,
  type BadRowReason,
} from './bad-row.js';
import { decodeImage as defaultDecodeImage, type ImageDecoder, type PixelImage } from '@mllm/models/image';
import { normalizeLanguage } from './languages.js';
import { describeSource, readTsvRecords, type TsvSource } from './tsv-source.js';

/** Distance between rotated copies of one MMBench question: `index = base + k · ROTATION_STRIDE`. */
export const ROTATION_STRIDE = 1_000_000;

/** An image field of at most this many characters is the index of another row (VLMEvalKit rule). */
export const IMAGE_REFERENCE_MAX_LENGTH = 64;

/** Values treated as a missing cell by default. */
export const DEFAULT_MISSING_VALUES: readonly string[] = Object.freeze(['', 'nan', 'NaN']);

/**
 * The strings pandas' `read_csv` turns into NaN by default, which the reference therefore treats as
 * missing. Pass as `missingValues` to reproduce it exactly — note it drops an option whose text is
 * literally `None`, `NA` or `null`.
 */
export const PANDAS_MISSING_VALUES: readonly string[] = Object.freeze([
  '', '#N/A', '#N/A N/A', '#NA', '-1.#IND', '-1.#QNAN', '-NaN', '-nan', '1.#IND', '1.#QNAN', '<NA>', 'N/A', 'NA',
  'NULL', 'NaN', 'None', 'n/a', 'nan', 'null',
]);

/** One answer option. */
export interface OptionChoice {
  /** `A`, `B`, … */
  readonly letter: string;
  readonly text: string;
}

/** One benchmark question (one rotation of it for circular MMBench files). */
export interface BenchmarkRow {
  /** The row's `index`. */
  readonly index: number;
  /** `index mod 1,000,000`: the question this rotation belongs to. */
  readonly baseIndex: number;
  /** `floor(index / 1,000,000)`: 0 for the original, k for the k-th rotated copy. */
  readonly rotation: number;
  readonly question: string;
  readonly hint: string | undefined;
  /** Present options in letter order (missing ones dropped). */
  readonly options: readonly OptionChoice[];
  /**
   * Ground-truth letter, one of `options[i].letter`; `''` for a row without an answer, which only
   * `requireAnswers: false` accepts (a test split read for predictions).
   */
  readonly answer: string;
  readonly category: string | undefined;
  readonly l2Category: string | undefined;
  readonly split: string | undefined;
  /** Normalized language (`cn` → `zh`), from the `language`/`lang` column or the reader option. */
  readonly language: string | undefined;
  /** Decoded images (0 or 1; empty when the row has no image or `decodeImages` is false). */
  readonly images: readonly PixelImage[];
  /** The base64 image text (resolved through a reference), if any. */
  readonly imageBase64: string | undefined;
  /** The index of the row whose image this row reuses, when the image field was a reference. */
  readonly imageReference: number | undefined;
  /** All cells by {@link columnKey} of their header name, `image` excluded. */
  readonly fields: Readonly<Record<string, string>>;
  /** Source name and 1-based line where the record ends. */
  readonly source: string;
  readonly line: number;
}

/** Options of {@link readBenchmarkRows}. */
export interface ReadBenchmarkOptions {
  /** Language for rows without a `language`/`lang` cell (a row's own cell wins). */
  readonly language?: string;
  /** `'error'` (default): throw {@link BadRowError}; `'skip'`: drop the row and call `onSkip`. */
  readonly onBadRow?: BadRowPolicy;
  /** Called for every skipped bad row under `onBadRow: 'skip'`. */
  readonly onSkip?: (issue: BadRowIssue) => void;
  /** Decode images to pixels (default true). With false, rows carry `imageBase64` only. */
  readonly decodeImages?: boolean;
  /** Image decoder (default: pure-JS PNG + JPEG). Swap in e.g. a canvas-based one in browsers. */
  readonly decodeImage?: ImageDecoder;
  /** Cell values treated as missing (default {@link DEFAULT_MISSING_VALUES}). */
  readonly missingValues?: readonly string[];
  /** Name used in error messages (default: the file path, or `<text>` / `<stream>`). */
  readonly sourceName?: string;
  /**
   * Rows must have an answer (default true). False accepts rows without one (and a header without an
   * `answer` column), as in a test split that is run for predictions without scoring; a row that does
   * have an answer must still name one of its options.
   */
  readonly requireAnswers?: boolean;
  /** Called once with the header's column names as written (trimmed), before the first row. */
  readonly onHeader?: (columns: readonly string[]) => void;
}

/**
 * The key a header name is looked up by: option letters `A`…`Z` as they are, other names
 * lower-cased with `_` read as `-` (`L2_category` → `l2-category`).
 */
export function columnKey(name: string): string {
  const trimmed = name.trim();
  return /^[A-Z]$/.test(trimmed) ? trimmed : trimmed.toLowerCase().replace(/_/g, '-');
}

/** A header quoted for a message: at most 12 names, each shortened. */
function previewHeader(header: readonly string[]): string {
  const names = header.slice(0, 12).map((name) => previewCell(name));
  return `[${names.join(', ')}${header.length > 12 ? `, … ${header.length - 12} more` : ''}]`;
}

interface Draft {
  row: Omit<BenchmarkRow, 'images' | 'imageBase64'>;
  rawIndex: string;
  /** Index (as written) of the row whose image is reused. */
  referenceTarget: string | undefined;
  inlineImage: string | undefined;
}

/**
 * Streams the rows of a benchmark TSV, validating each row and resolving image references.
 *
 * Image references may point backwards or forwards: every inline image is kept (as base64 text) for
 * the rest of the pass, and a row whose referenced row has not appeared yet waits until it does —
 * so such rows are yielded right after the row holding their image, i.e. out of file order. A
 * reference that is never satisfied is reported at the end of the file. A reference must name a
 * row that holds image data itself (no chains), as in VLMEvalKit.
 *
 * Bad rows (non-integer or duplicate index, more or fewer cells than the header, missing or unknown
 * answer letter, no options, undecodable image, bad image reference, a quote that is never closed)
 * throw a {@link BadRowError} naming the row's index, or with `onBadRow: 'skip'` are dropped and
 * reported through `onSkip`. An empty file or a header without the required columns throws a
 * {@link BenchmarkFormatError}. Messages quote at most the first characters of a cell.
 */
export async function* readBenchmarkRows(
  source: TsvSource,
  options: ReadBenchmarkOptions = {},
): AsyncGenerator<BenchmarkRow> {
  const sourceName = options.sourceName ?? describeSource(source);
  const policy = options.onBadRow ?? 'error';
  if (policy !== 'error' && policy !== 'skip') {
    throw new TypeError(`onBadRow: expected 'error' or 'skip', got ${JSON.stringify(policy)}`);
  }
  const decode = options.decodeImages ?? true;
  const decoder = options.decodeImage ?? defaultDecodeImage;
  const missing = new Set(options.missingValues ?? DEFAULT_MISSING_VALUES);
  const defaultLanguage = normalizeLanguage(options.language);
  const isMissing = (value: string | undefined) => value === undefined || missing.has(value) || value.trim() === '';

  const inlineImages = new Map<string, string>(); // raw index → base64
  const seenIndices = new Set<string>();
  const pending = new Map<string, Draft[]>(); // referenced raw index → waiting rows
  const decodedCache = new Map<string, PixelImage>(); // small LRU keyed by the image-holding index

  const requireAnswers = options.requireAnswers ?? true;
  const reject = (rawIndex: string, line: number, reason: BadRowReason, message: string): void => {
    const issue: BadRowIssue = { rowIndex: shortenCell(rawIndex), source: sourceName, line, reason, message };
    if (policy === 'error') throw new BadRowError(issue);
    options.onSkip?.(issue);
  };

  const decodeCached = (holder: string, base64: string): PixelImage => {
    const cached = decodedCache.get(holder);
    if (cached) {
      decodedCache.delete(holder);
      decodedCache.set(holder, cached);
      return cached;
    }
    const image = decoder(decodeBase64(base64));
    decodedCache.set(holder, image);
    if (decodedCache.size > 8) decodedCache.delete(decodedCache.keys().next().value as string);
    return image;
  };

  /** Completes a draft whose image (if any) is available; returns undefined when rejected. */
  const finish = (draft: Draft): BenchmarkRow | undefined => {
    const holder = draft.referenceTarget ?? (draft.inlineImage !== undefined ? draft.rawIndex : undefined);
    const base64 = holder === undefined ? undefined : inlineImages.get(holder);
    let images: PixelImage[] = [];
    if (base64 !== undefined && decode) {
      try {
        images = [decodeCached(holder as string, base64)];
      } catch (error) {
        const via = draft.referenceTarget !== undefined ? ` (referenced row ${draft.referenceTarget})` : '';
        reject(draft.rawIndex, draft.row.line, 'bad-image', `image${via} cannot be decoded: ${(error as Error).message}`);
        return undefined;
      }
    }
    return { ...draft.row, images, imageBase64: base64 };
  };

  let header: string[] | undefined;
  let columnOf: Map<string, number> = new Map();
  let optionColumns: Array<[string, number]> = [];

  let rowNumber = 0; // data records so far (the header excluded)

  const records = readTsvRecords(source, {
    sourceName,
    // A quote that is never closed swallows the rest of the input into one record: that record is a
    // bad row (skipped or thrown per the policy); the lines it swallowed cannot be read.
    onSyntaxError: (problem) => {
      if (header === undefined) throw new BenchmarkFormatError(sourceName, problem.line, problem.message);
      reject('', problem.line, problem.code === 'CSV_QUOTE_NOT_CLOSED' ? 'unterminated-quote' : 'syntax', problem.message);
    },
  });
  for await (const record of records) {
    if (header === undefined) {
      header = record.fields.map((name) => name.trim());
      columnOf = new Map();
      header.forEach((name, position) => {
        const key = columnKey(name);
        if (!columnOf.has(key)) columnOf.set(key, position);
      });
      for (const required of requireAnswers ? ['index', 'question', 'answer'] : ['index', 'question']) {
        if (!columnOf.has(required)) {
          const hint =
            required === 'answer'
              ? ' (a test split without answers can be run for predictions without scoring: requireAnswers: false, ' +
                "evaluate's predictOnly, mllm-eval --predict-only)"
              : '';
          throw new BenchmarkFormatError(
            sourceName,
            record.line,
            `the header has no '${required}' column${hint}; expected at least index, question, answer and option ` +
              `columns A, B, …, got ${previewHeader(header)}`,
          );
        }
      }
      optionColumns = [...columnOf.entries()].filter(([name]) => /^[A-Z]$/.test(name)).sort(([a], [b]) => (a < b ? -1 : 1));
      if (optionColumns.length === 0) {
        throw new BenchmarkFormatError(sourceName, record.line, `the header has no option columns (A, B, …), got ${previewHeader(header)}`);
      }
      options.onHeader?.(header);
      continue;
    }
    const { fields, line } = record;
    rowNumber++;
    const cell = (name: string): string | undefined => {
      const position = columnOf.get(name);
      return position === undefined ? undefined : fields[position];
    };
    const text = (name: string): string | undefined => {
      const value = cell(name);
      return isMissing(value) ? undefined : value;
    };
    const rawIndex = (cell('index') ?? '').trim();

    // A short row is an error, not padded: the missing cells are the last ones, usually the image,
    // and padding would silently score an image question as text-only.
    if (fields.length !== header.length) {
      reject(rawIndex, line, 'column-count', `row ${rowNumber} has ${fields.length} cells, the header has ${header.length}`);
      continue;
    }
    if (!/^\d+$/.test(rawIndex) || !Number.isSafeInteger(Number(rawIndex))) {
      reject(rawIndex, line, 'bad-index', `index must be a non-negative integer, got ${previewCell(rawIndex)}`);
      continue;
    }
    if (seenIndices.has(rawIndex)) {
      reject(rawIndex, line, 'duplicate-index', `index ${rawIndex} appears more than once`);
      continue;
    }
    seenIndices.add(rawIndex);

    // The image is registered before the other checks so that references to this row still resolve.
    const imageCell = text('image')?.trim();
    let referenceTarget: string | undefined;
    let inlineImage: string | undefined;
    if (imageCell !== undefined) {
      if (imageCell.length <= IMAGE_REFERENCE_MAX_LENGTH) referenceTarget = imageCell;
      else {
        inlineImage = imageCell;
        inlineImages.set(rawIndex, imageCell);
      }
    }

    const optionList: OptionChoice[] = [];
    for (const [letter] of optionColumns) {
      const value = text(letter);
      if (value !== undefined) optionList.push({ letter, text: value });
    }
    const answer = text('answer')?.trim();
    const index = Number(rawIndex);
    const fieldRecord: Record<string, string> = {};
    for (const [name, position] of columnOf) {
      if (name !== 'image') fieldRecord[name] = fields[position] ?? '';
    }
    const draft: Draft = {
      rawIndex,
      referenceTarget,
      inlineImage,
      row: {
        index,
        baseIndex: index % ROTATION_STRIDE,
        rotation: Math.floor(index / ROTATION_STRIDE),
        question: cell('question') ?? '',
        hint: text('hint'),
        options: optionList,
        answer: answer ?? '',
        category: text('category'),
        l2Category: text('l2-category'),
        split: text('split'),
        language: normalizeLanguage(text('language') ?? text('lang')) ?? defaultLanguage,
        imageReference: referenceTarget !== undefined && /^\d+$/.test(referenceTarget) ? Number(referenceTarget) : undefined,
        fields: fieldRecord,
        source: sourceName,
        line,
      },
    };

    rowChecks: {
      if (optionList.length === 0) {
        reject(rawIndex, line, 'no-options', 'has no options (all option cells are missing)');
        break rowChecks;
      }
      if ((answer === undefined || answer === '') && requireAnswers) {
        reject(
          rawIndex,
          line,
          'missing-answer',
          "has no answer (a test split without answers can be run for predictions without scoring: evaluate's " +
            'predictOnly, mllm-eval --predict-only)',
        );
        break rowChecks;
      }
      if (answer !== undefined && answer !== '' && !optionList.some((option) => option.letter === answer)) {
        reject(
          rawIndex,
          line,
          'unknown-answer',
          `answer ${previewCell(answer)} is not one of its options ${optionList.map((o) => o.letter).join(', ')}`,
        );
        break rowChecks;
      }
      if (referenceTarget === undefined) {
        const row = finish(draft);
        if (row) yield row;
      } else if (inlineImages.has(referenceTarget)) {
        const row = finish(draft);
        if (row) yield row;
      } else if (seenIndices.has(referenceTarget)) {
        reject(rawIndex, line, 'bad-image-reference', `image refers to row ${referenceTarget}, which holds no image data itself`);
      } else {
        const waiting = pending.get(referenceTarget) ?? [];
        waiting.push(draft);
        pending.set(referenceTarget, waiting);
      }
    }

    // Rows that were waiting for this row's image (even when this row itself was rejected).
    const waiting = pending.get(rawIndex);
    if (waiting) {
      pending.delete(rawIndex);
      for (const waitingDraft of waiting) {
        if (inlineImage === undefined) {
          reject(
            waitingDraft.rawIndex,
            waitingDraft.row.line,
            'bad-image-reference',
            `image refers to row ${rawIndex}, which holds no image data itself`,
          );
          continue;
        }
        const resolved = finish(waitingDraft);
        if (resolved) yield resolved;
      }
    }
  }
  if (header === undefined) throw new BenchmarkFormatError(sourceName, 1, 'the TSV is empty (no header row)');
  for (const [target, waiting] of pending) {
    for (const draft of waiting) {
      reject(
        draft.rawIndex,
        draft.row.line,
        'bad-image-reference',
        seenIndices.has(target)
          ? `image refers to row ${target}, which holds no image data itself`
          : `image refers to row ${previewCell(target)}, which does not exist`,
      );
    }
  }
}
