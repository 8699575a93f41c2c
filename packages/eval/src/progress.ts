/**
 * A dependency-free progress indicator. On a TTY it redraws one line
 * (`[#####-----] 120/600  20.0% 3.4 rows/s ETA 2:21`); otherwise it prints a plain line at most
 * every `intervalMs` and a last one when done, so logs stay readable.
 */

/** Where the progress goes. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  /** Expected number of steps; unknown (no bar, no ETA) when undefined. */
  readonly total?: number;
  readonly stream: ProgressStream;
  /** Label before the counts. */
  readonly label?: string;
  /** Minimum time between plain (non-TTY) lines (default 10 s) and TTY redraws (default 100 ms). */
  readonly intervalMs?: number;
  /** Clock in milliseconds (default `Date.now`); injectable for tests. */
  readonly now?: () => number;
}

/** A running progress indicator. */
export interface Progress {
  /** Marks `count` more steps done. */
  tick(count?: number): void;
  /** Changes the label (e.g. the dataset being read). */
  setLabel(label: string): void;
  /** Prints the final state (and a newline on a TTY). */
  done(): void;
  /** Steps done so far. */
  readonly completed: number;
}

/** `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${secs}` : `${minutes}:${secs}`;
}

/** Creates a progress indicator; see the module comment for the two display modes. */
export function createProgress(options: ProgressOptions): Progress {
  const now = options.now ?? Date.now;
  const tty = options.stream.isTTY === true;
  const interval = options.intervalMs ?? (tty ? 100 : 10_000);
  const start = now();
  let label = options.label ?? '';
  let completed = 0;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let finished = false;

  const describe = (): string => {
    const elapsed = (now() - start) / 1000;
    const rate = elapsed > 0 ? completed / elapsed : 0;
    const parts: string[] = [];
    if (label) parts.push(label);
    const { total } = options;
    if (total !== undefined && total > 0) {
      const fraction = Math.min(1, completed / total);
      if (tty) {
        const width = 20;
        const filled = Math.round(fraction * width);
        parts.push(`[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`);
      }
      parts.push(`${completed}/${total}`, `${(fraction * 100).toFixed(1)}%`);
      parts.push(`${rate.toFixed(2)} rows/s`);
      parts.push(`ETA ${rate > 0 ? formatDuration((total - completed) / rate) : '?'}`);
    } else {
      parts.push(`${completed} rows`, `${rate.toFixed(2)} rows/s`);
    }
    parts.push(`elapsed ${formatDuration(elapsed)}`);
    return parts.join(' ');
  };

  const draw = (force: boolean) => {
    const time = now();
    if (!force && time - lastDraw < interval) return;
    lastDraw = time;
    if (tty) {
      let line = describe();
      const columns = options.stream.columns;
      if (columns && line.length > columns - 1) line = line.slice(0, columns - 1);
      options.stream.write(`\r\x1b[2K${line}`);
    } else {
      options.stream.write(`progress: ${describe()}\n`);
    }
  };

  return {
    tick(count = 1) {
      completed += count;
      draw(false);
    },
    setLabel(next: string) {
      label = next;
    },
    done() {
      if (finished) return;
      finished = true;
      draw(true);
      if (tty) options.stream.write('\n');
    },
    get completed() {
      return completed;
    },
  };
}
