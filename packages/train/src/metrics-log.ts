/**
 * Metrics as JSON Lines: one JSON object per line (step, loss, lr, gradNorm, time, …), easy to
 * plot with any tool. Non-finite numbers are written as `null` (JSON has no NaN/Infinity).
 */
import { nodeFileSync } from '@mllm/core';
import type { TextStream } from './progress.js';

/** One JSONL line (with the trailing newline) for a record. */
export function toJsonLine(record: Record<string, unknown>): string {
  return `${JSON.stringify(record, (_key, value) => (typeof value === 'number' && !Number.isFinite(value) ? null : value))}\n`;
}

/** Parse JSONL text into records (blank lines ignored); errors name the line number. */
export function parseJsonLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch (error) {
      throw new Error(`parseJsonLines: line ${i + 1} is not JSON: ${(error as Error).message}`);
    }
  }
  return out;
}

/** Appends one JSON line per record to a stream. */
export class MetricsLog {
  constructor(private readonly stream: TextStream) {
    if (!stream || typeof stream.write !== 'function') throw new Error('MetricsLog: stream must have a write(text) method');
  }

  append(record: Record<string, unknown>): void {
    this.stream.write(toJsonLine(record));
  }
}

/**
 * Node.js only: a stream appending to `path` (created if absent; `truncate` empties it first).
 * Each line is appended synchronously, so a crash loses at most the line being written.
 */
export async function openMetricsFile(path: string, options: { truncate?: boolean } = {}): Promise<TextStream & { path: string }> {
  const { fs, path: nodePath } = await nodeFileSync('openMetricsFile');
  fs.mkdirSync(nodePath.dirname(path), { recursive: true });
  if (options.truncate) fs.writeFileSync(path, '');
  return { path, isTTY: false, write: (text: string) => fs.appendFileSync(path, text) };
}
