/**
 * Turns the accepted TSV sources (file path, TSV text, Node Readable, web ReadableStream, async
 * iterable of chunks) into a Node Readable of bytes/strings, then streams parsed records from it
 * with `csv-parse`.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import { parse } from 'csv-parse';
import { shortenCell } from './bad-row.js';

/**
 * Where a TSV comes from:
 * - a string without a newline: a file path; a string containing a newline: the TSV text itself;
 * - `{ text }`: TSV text (use this for one-line text), `{ path }`: a file path;
 * - a Node `Readable`, a web `ReadableStream`, or any (async) iterable of string / byte chunks.
 */
export type TsvSource =
  | string
  | { readonly text: string }
  | { readonly path: string }
  | Readable
  | ReadableStream<Uint8Array | string>
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array | string>;

/** A short human-readable name for a source (the file path, or `<text>` / `<stream>`). */
export function describeSource(source: TsvSource): string {
  if (typeof source === 'string') return source.includes('\n') ? '<text>' : source;
  if (typeof source === 'object' && source !== null && 'path' in source && typeof source.path === 'string') {
    return source.path;
  }
  if (typeof source === 'object' && source !== null && 'text' in source) return '<text>';
  return '<stream>';
}

function toReadable(source: TsvSource): Readable {
  if (typeof source === 'string') {
    return source.includes('\n') ? Readable.from([source]) : createReadStream(source);
  }
  if (source instanceof Readable) return source;
  if (typeof source === 'object' && source !== null) {
    if ('text' in source && typeof source.text === 'string') return Readable.from([source.text]);
    if ('path' in source && typeof source.path === 'string') return createReadStream(source.path);
    if (typeof (source as ReadableStream).getReader === 'function') {
      return Readable.fromWeb(source as unknown as NodeWebReadableStream);
    }
    if (Symbol.asyncIterator in source || Symbol.iterator in source) {
      return Readable.from(source as AsyncIterable<Uint8Array | string>, { objectMode: false });
    }
  }
  throw new TypeError(
    `source: expected a file path, TSV text, { text }, { path }, a Node Readable, a web ReadableStream or an ` +
      `iterable of chunks, got ${source === null ? 'null' : typeof source}`,
  );
}

/** One parsed TSV record with the 1-based line number it ends on. */
export interface TsvRecord {
  readonly fields: string[];
  readonly line: number;
}

/** A place where the input is not valid TSV (reported by `csv-parse`). */
export interface TsvSyntaxIssue {
  /** `csv-parse`'s error code, e.g. `CSV_QUOTE_NOT_CLOSED`. */
  readonly code: string;
  /** 1-based line where the broken record starts. */
  readonly line: number;
  /** 1-based line the parser had reached (for an unclosed quote: the last line of the input). */
  readonly lastLine: number;
  /** What is wrong, with both lines; never quotes more than a short piece of the input. */
  readonly message: string;
}

/** Thrown by {@link readTsvRecords} for a syntax error when no `onSyntaxError` handler is given. */
export class TsvSyntaxError extends Error {
  override name = 'TsvSyntaxError';
  constructor(
    readonly source: string,
    readonly issue: TsvSyntaxIssue,
  ) {
    super(`${source}:${issue.line}: ${issue.message}`);
  }
}

/** Options of {@link readTsvRecords}. */
export interface ReadTsvOptions {
  /** Name used in error messages (default: {@link describeSource}). */
  readonly sourceName?: string;
  /**
   * Called (in file order, between the records around it) for each syntax error; the broken record
   * is left out and reading goes on. Without it the first syntax error throws {@link TsvSyntaxError}.
   */
  readonly onSyntaxError?: (issue: TsvSyntaxIssue) => void;
}

interface CsvParseError extends Error {
  readonly code?: string;
  /** Records emitted before the error. */
  readonly records?: number;
  /** Lines read when the error was raised. */
  readonly lines?: number;
}

function syntaxIssue(error: CsvParseError, start: number): TsvSyntaxIssue {
  const code = error.code ?? 'CSV_ERROR';
  const lastLine = error.lines ?? start;
  const message =
    code === 'CSV_QUOTE_NOT_CLOSED'
      ? `unterminated quote: a cell of the record starting on line ${start} opens a double quote that is never ` +
        `closed, so lines ${start}–${lastLine} (to the end of the input) cannot be split into rows ` +
        `(a cell that starts with " must end with "; write a literal quote inside a quoted cell as "")`
      : `TSV syntax error in the record starting on line ${start}: ${shortenCell(error.message, 200)}`;
  return { code, line: start, lastLine, message };
}

/**
 * Streams the records of a tab-separated file with standard double-quote quoting (what pandas'
 * `to_csv(sep='\t')` writes): quoted fields may contain tabs, newlines and doubled quotes.
 * A UTF-8 byte-order mark is dropped; empty lines are skipped; rows of any width are passed through
 * (the caller validates widths so it can name the offending row). A syntax error (a quote that is
 * never closed) goes to `onSyntaxError`, or throws a {@link TsvSyntaxError} naming the source and line.
 */
export async function* readTsvRecords(source: TsvSource, options: ReadTsvOptions = {}): AsyncGenerator<TsvRecord> {
  const sourceName = options.sourceName ?? describeSource(source);
  const input = toReadable(source);
  const parser = parse({
    delimiter: '\t',
    bom: true,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    info: true,
    // Report broken records through 'skip' instead of destroying the stream: a thrown parse error
    // makes the async iterator drop the records still buffered before it.
    skip_records_with_error: true,
  });
  const errors: CsvParseError[] = [];
  parser.on('skip', (error: CsvParseError) => errors.push(error));
  input.on('error', (error) => parser.destroy(error));
  input.pipe(parser);
  let yielded = 0;
  let lastLine = 0;
  const report = (error: CsvParseError) => {
    const issue = syntaxIssue(error, lastLine + 1);
    if (!options.onSyntaxError) throw new TsvSyntaxError(sourceName, issue);
    options.onSyntaxError(issue);
  };
  try {
    for await (const entry of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      // Errors raised after `yielded` records come before the next record.
      while (errors.length > 0 && (errors[0].records ?? 0) <= yielded) report(errors.shift() as CsvParseError);
      yielded++;
      lastLine = entry.info.lines;
      yield { fields: entry.record, line: entry.info.lines };
    }
    while (errors.length > 0) report(errors.shift() as CsvParseError);
  } finally {
    input.unpipe(parser);
    if (!input.destroyed) input.destroy();
    if (!parser.destroyed) parser.destroy();
  }
}
