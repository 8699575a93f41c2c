/**
 * Turns the accepted TSV sources (file path, TSV text, Node Readable, web ReadableStream, async
 * iterable of chunks) into a Node Readable of bytes/strings, then streams parsed records from it
 * with `csv-parse`.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import { parse } from 'csv-parse';

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

/** One parsed TSV record with the 1-based line number it starts on. */
export interface TsvRecord {
  readonly fields: string[];
  readonly line: number;
}

/**
 * Streams the records of a tab-separated file with standard double-quote quoting (what pandas'
 * `to_csv(sep='\t')` writes): quoted fields may contain tabs, newlines and doubled quotes.
 * A UTF-8 byte-order mark is dropped; empty lines are skipped; rows of any width are passed through
 * (the caller validates widths so it can name the offending row).
 */
export async function* readTsvRecords(source: TsvSource): AsyncGenerator<TsvRecord> {
  const input = toReadable(source);
  const parser = parse({
    delimiter: '\t',
    bom: true,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    info: true,
  });
  input.on('error', (error) => parser.destroy(error));
  input.pipe(parser);
  try {
    for await (const entry of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      yield { fields: entry.record, line: entry.info.lines };
    }
  } finally {
    input.unpipe(parser);
    if (!input.destroyed) input.destroy();
    if (!parser.destroyed) parser.destroy();
  }
}
