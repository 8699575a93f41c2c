import { describe, expect, it } from 'vitest';
import { createProgress, formatDuration } from './progress.js';

function recorder(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, columns: 200, write: (text: string) => writes.push(text) } };
}

describe('progress', () => {
  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(65)).toBe('1:05');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(Number.NaN)).toBe('?');
  });

  it('redraws one line on a TTY with count, rate and ETA', () => {
    let time = 0;
    const { writes, stream } = recorder(true);
    const progress = createProgress({ total: 10, stream, label: 'eval', now: () => time, intervalMs: 100 });
    time = 1000;
    progress.tick(); // 1 row in 1 s → 1 row/s, 9 rows left
    expect(writes.at(-1)).toBe('\r\x1b[2Keval [##------------------] 1/10 10.0% 1.00 rows/s ETA 0:09 elapsed 0:01');
    time = 1050;
    progress.tick(); // within the redraw interval: no write
    expect(writes).toHaveLength(1);
    time = 4000;
    progress.tick(3); // 5 rows in 4 s
    expect(writes.at(-1)).toBe('\r\x1b[2Keval [##########----------] 5/10 50.0% 1.25 rows/s ETA 0:04 elapsed 0:04');
    progress.done();
    expect(writes.at(-1)).toBe('\n');
    expect(progress.completed).toBe(5);
  });

  it('prints plain periodic lines when not a TTY', () => {
    let time = 0;
    const { writes, stream } = recorder(false);
    const progress = createProgress({ total: 4, stream, now: () => time, intervalMs: 10_000 });
    time = 2000;
    progress.tick();
    time = 5000;
    progress.tick();
    time = 13_000;
    progress.tick();
    time = 14_000;
    progress.tick();
    progress.done();
    progress.done(); // idempotent
    expect(writes).toEqual([
      'progress: 1/4 25.0% 0.50 rows/s ETA 0:06 elapsed 0:02\n',
      'progress: 3/4 75.0% 0.23 rows/s ETA 0:04 elapsed 0:13\n',
      'progress: 4/4 100.0% 0.29 rows/s ETA 0:00 elapsed 0:14\n',
    ]);
    expect(writes.every((line) => !line.includes('\r'))).toBe(true);
  });

  it('works without a known total', () => {
    const { writes, stream } = recorder(false);
    const progress = createProgress({ stream, now: () => 2000 });
    progress.tick(4);
    expect(writes[0]).toMatch(/^progress: 4 rows /);
  });
});
