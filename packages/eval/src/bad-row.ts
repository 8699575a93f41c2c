/** Problems with single benchmark rows, and how the reader reacts to them. */

/** Why a row was rejected. */
export type BadRowReason =
  | 'bad-index'
  | 'duplicate-index'
  | 'column-count'
  | 'missing-answer'
  | 'unknown-answer'
  | 'no-options'
  | 'bad-image'
  | 'bad-image-reference'
  | 'rotation-without-base'
  /** A quoted cell that is never closed: the rest of the file cannot be split into rows. */
  | 'unterminated-quote'
  /** Any other TSV syntax error reported by the parser. */
  | 'syntax';

/** A rejected row: its `index` field as written in the file, where it is, and why. */
export interface BadRowIssue {
  /**
   * The row's `index` field as written (may be empty or not an integer for `bad-index`; empty when
   * the row could not be split into cells). Longer than {@link CELL_PREVIEW_LENGTH} characters it is
   * cut there and ends with `…`, so a huge bad cell is never copied into messages and reports.
   */
  readonly rowIndex: string;
  /** Name of the source (file path or `<text>`). */
  readonly source: string;
  /** 1-based line in the source where the record ends. */
  readonly line: number;
  readonly reason: BadRowReason;
  readonly message: string;
}

/** What to do with a bad row: throw a {@link BadRowError} (default) or skip it and count it. */
export type BadRowPolicy = 'error' | 'skip';

/** Characters of a cell that messages quote; the rest is left out (see {@link previewCell}). */
export const CELL_PREVIEW_LENGTH = 40;

/**
 * The first {@link CELL_PREVIEW_LENGTH} characters of a cell, ending with `…` when it is longer.
 * Cuts between code points, never inside a surrogate pair.
 */
export function shortenCell(value: string, limit = CELL_PREVIEW_LENGTH): string {
  if (value.length <= limit) return value;
  // Only the first 2·limit code units can hold the first `limit` code points: no copy of a 50 MB cell.
  const head = Array.from(value.slice(0, 2 * limit)).slice(0, limit).join('');
  return head.length >= value.length ? value : `${head}…`;
}

/**
 * A cell quoted for an error message: `"abc"`, or for a long cell its first characters and its
 * length, `"iVBORw0KGgoAAAANSUhEUgAA…" (52,428,800 characters)`.
 */
export function previewCell(value: string, limit = CELL_PREVIEW_LENGTH): string {
  const short = shortenCell(value, limit);
  return short === value ? JSON.stringify(value) : `${JSON.stringify(short)} (${value.length.toLocaleString('en-US')} characters)`;
}

/** Thrown for a bad row under the default `onBadRow: 'error'` policy. */
export class BadRowError extends Error {
  override name = 'BadRowError';
  constructor(readonly issue: BadRowIssue) {
    // The reader stores rowIndex already shortened; shortening again leaves such a value unchanged.
    super(`${issue.source}:${issue.line}: row index ${JSON.stringify(shortenCell(issue.rowIndex))}: ${issue.message}`);
  }
}

/**
 * A benchmark file that cannot be read at all: an empty file, or a header without the required
 * columns. Its message names the source (and line) and what was expected; no row is involved.
 */
export class BenchmarkFormatError extends Error {
  override name = 'BenchmarkFormatError';
  constructor(
    /** Name of the source (file path or `<text>`). */
    readonly source: string,
    /** 1-based line the problem was found on. */
    readonly line: number,
    readonly problem: string,
  ) {
    super(`${source}:${line}: ${problem}`);
  }
}
