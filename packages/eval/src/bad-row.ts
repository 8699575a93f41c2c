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
  | 'rotation-without-base';

/** A rejected row: its `index` field as written in the file, where it is, and why. */
export interface BadRowIssue {
  /** The row's `index` field as written (may be empty or not an integer for `bad-index`). */
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

/** Thrown for a bad row under the default `onBadRow: 'error'` policy. */
export class BadRowError extends Error {
  override name = 'BadRowError';
  constructor(readonly issue: BadRowIssue) {
    super(`${issue.source}:${issue.line}: row index ${JSON.stringify(issue.rowIndex)}: ${issue.message}`);
  }
}
