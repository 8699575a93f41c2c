/**
 * Training progress output. On a TTY one line is redrawn in place (`\r` … erase-to-end):
 * bar, step/total, loss, lr, steps/s (and tokens/s when known), ETA. Elsewhere (CI logs, files,
 * `process.stdout.isTTY` false) plain lines are written every `logEvery` steps, plus the first and
 * the last step. The stream is injectable so output can be captured.
 *
 * Why not `cli-progress` / `progress`: both write to a Node TTY stream; this bar also runs in browsers
 * (falling back to `console.log` lines), writes plain periodic lines for logs, takes an injected clock
 * for tests, and @mllm/core keeps no runtime dependency besides its tfjs peers.
 */

/** Where text goes: `process.stdout`, a file stream, or a test's collector. */
export interface TextStream {
  write(text: string): unknown;
  /** True for an interactive terminal (redraw in place). */
  isTTY?: boolean;
  /** Terminal width; lines are cut to fit. */
  columns?: number;
}

export interface ProgressOptions {
  /** Default: `process.stdout` where it exists, else `console.log` lines. */
  stream?: TextStream;
  /** Force TTY (redraw) or plain mode; default `stream.isTTY === true`. */
  tty?: boolean;
  /** Plain mode: a line every this many steps (default 10). */
  logEvery?: number;
  /** TTY mode: redraw at most every this many ms, the last step always (default 100). */
  redrawIntervalMs?: number;
  /** Milliseconds clock (default `performance.now`). */
  clock?: () => number;
  /** Prefix of each line. */
  label?: string;
  /** Bar width in characters (default 20). */
  barWidth?: number;
}

export interface ProgressUpdate {
  /** Steps completed. */
  step: number;
  loss: number;
  lr?: number;
  /** Tokens processed in this step (enables tokens/s). */
  tokens?: number;
  /**
   * Which run the step belongs to (e.g. `seed 2 parrot`), shown after step/total: when several runs
   * feed one bar, each line says whose loss and lr it shows.
   */
  run?: string;
}

/** `M:SS` below an hour, else `H:MM:SS`; `?` for unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

function formatRate(value: number): string {
  if (!Number.isFinite(value)) return '?';
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return value >= 100 ? value.toFixed(0) : value.toFixed(2);
}

function formatLoss(loss: number): string {
  return Number.isFinite(loss) ? loss.toFixed(4) : String(loss);
}

function defaultStream(): TextStream {
  const stdout = (globalThis as { process?: { stdout?: TextStream } }).process?.stdout;
  if (stdout && typeof stdout.write === 'function') return stdout;
  return { write: (text: string) => console.log(text.replace(/\n$/, '')), isTTY: false };
}

export class ProgressBar {
  private readonly stream: TextStream;
  private readonly tty: boolean;
  private readonly logEvery: number;
  private readonly redrawIntervalMs: number;
  private readonly clock: () => number;
  private readonly label: string;
  private readonly barWidth: number;
  private startTime = 0;
  private startStep = 0;
  private tokens = 0;
  private lastDraw = -Infinity;
  private lastText = '';
  private open = false;
  /** `start()` was implied by the first update (timing counts from it; its own line reads `?`). */
  private impliedStart = false;

  constructor(
    readonly total: number,
    options: ProgressOptions = {},
  ) {
    if (!Number.isInteger(total) || total < 1) throw new Error(`ProgressBar: total must be a positive integer, got ${total}`);
    this.stream = options.stream ?? defaultStream();
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.logEvery = options.logEvery ?? 10;
    if (!Number.isInteger(this.logEvery) || this.logEvery < 1) throw new Error(`ProgressBar: logEvery must be a positive integer, got ${this.logEvery}`);
    this.redrawIntervalMs = options.redrawIntervalMs ?? 100;
    this.clock = options.clock ?? (() => performance.now());
    this.label = options.label ? `${options.label} ` : '';
    this.barWidth = options.barWidth ?? 20;
  }

  /** Begin timing; `startStep` = steps already done (a resumed run). */
  start(startStep = 0): void {
    this.startStep = startStep;
    this.startTime = this.clock();
    this.tokens = 0;
    this.lastDraw = -Infinity;
    this.open = true;
    this.impliedStart = false;
  }

  /** The text of the status line for an update (no `\r`/newline). */
  private render(update: ProgressUpdate, now: number): string {
    const elapsed = Math.max(1e-9, (now - this.startTime) / 1000);
    const done = update.step - this.startStep;
    // With the start implied by the first update (no start() call), timing begins at that update: its
    // own line has no interval to measure (`?`, not a meaningless "59.1k steps/s" from ~0 s elapsed).
    const stepsPerSecond = done > 0 ? done / elapsed : Number.NaN;
    const eta = stepsPerSecond > 0 ? (this.total - update.step) / stepsPerSecond : Number.NaN;
    const parts = [`${update.step}/${this.total}`];
    if (update.run) parts.push(update.run);
    parts.push(`loss ${formatLoss(update.loss)}`);
    if (update.lr !== undefined) parts.push(`lr ${update.lr.toExponential(2)}`);
    parts.push(`${formatRate(stepsPerSecond)} steps/s`);
    if (this.tokens > 0 || (update.tokens !== undefined && done === 0)) parts.push(`${formatRate(done > 0 ? this.tokens / elapsed : Number.NaN)} tokens/s`);
    parts.push(`ETA ${formatDuration(eta)}`);
    if (!this.tty) return `${this.label}step ${parts.join(' | ')}`;
    const filled = Math.min(this.barWidth, Math.round((this.barWidth * update.step) / this.total));
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(this.barWidth - filled)}]`;
    return `${this.label}${bar} ${parts.join('  ')}`;
  }

  /** Report a finished step. */
  update(update: ProgressUpdate): void {
    let opening = false;
    if (!this.open) {
      // the step's own duration is unknown: count from this update on (its tokens included)
      this.start(update.step);
      this.impliedStart = true;
      opening = true;
    }
    if (update.tokens !== undefined && !opening) this.tokens += update.tokens;
    const now = this.clock();
    const last = update.step >= this.total;
    if (this.tty) {
      if (!last && now - this.lastDraw < this.redrawIntervalMs) return;
      let text = this.render(update, now);
      if (this.stream.columns && text.length > this.stream.columns - 1) text = text.slice(0, this.stream.columns - 1);
      this.stream.write(`\r${text}\x1b[K`);
      this.lastText = text;
    } else {
      const base = this.impliedStart ? this.startStep - 1 : this.startStep; // the step before the first
      const first = update.step === base + 1;
      if (!first && !last && (update.step - base) % this.logEvery !== 0) return;
      this.stream.write(`${this.render(update, now)}\n`);
    }
    this.lastDraw = now;
  }

  /** End the line (TTY) and stop timing. Idempotent. */
  finish(): void {
    if (!this.open) return;
    if (this.tty && this.lastText) this.stream.write('\n');
    this.open = false;
  }
}
