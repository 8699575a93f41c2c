import { describe, expect, it } from 'vitest';
import { ProgressBar, type TextStream } from './progress.js';

function capture(isTTY: boolean): TextStream & { text: string } {
  const stream = { text: '', isTTY, write: (t: string) => { stream.text += t; } };
  return stream;
}

describe('ProgressBar', () => {
  it('without start(), the first line shows an unknown rate (not "59.1k steps/s"); later lines the measured one', () => {
    let now = 1000;
    const out = capture(false);
    const bar = new ProgressBar(4, { stream: out, clock: () => now, logEvery: 1 });
    now += 0.05; // the first update arrives right after the step: elapsed since the implied start ≈ 0
    bar.update({ step: 1, loss: 1, tokens: 10 });
    now += 500;
    bar.update({ step: 2, loss: 0.5, tokens: 10 });
    bar.finish();
    const lines = out.text.split('\n').filter(Boolean);
    expect(lines[0]).toBe('step 1/4 | loss 1.0000 | ? steps/s | ? tokens/s | ETA ?');
    // timing starts at the first update: 1 step (10 tokens) in 0.5 s → 2 steps/s, 20 tokens/s, 2 steps left
    expect(lines[1]).toBe('step 2/4 | loss 0.5000 | 2.00 steps/s | 20.00 tokens/s | ETA 0:01');
  });

  it('names the run each line belongs to, in plain and TTY mode', () => {
    let now = 0;
    const out = capture(false);
    const bar = new ProgressBar(10, { stream: out, clock: () => now, logEvery: 1, label: 'parrot-multilingual' });
    bar.start(0);
    now += 1000;
    bar.update({ step: 1, loss: 2, lr: 1e-3, run: 'seed 1 baseline' });
    now += 1000;
    bar.update({ step: 2, loss: 3, lr: 2e-4, run: 'seed 1 parrot' });
    const lines = out.text.split('\n').filter(Boolean);
    expect(lines).toEqual([
      'parrot-multilingual step 1/10 | seed 1 baseline | loss 2.0000 | lr 1.00e-3 | 1.00 steps/s | ETA 0:09',
      'parrot-multilingual step 2/10 | seed 1 parrot | loss 3.0000 | lr 2.00e-4 | 1.00 steps/s | ETA 0:08',
    ]);
    const tty = capture(true);
    const ttyBar = new ProgressBar(2, { stream: tty, clock: () => now, redrawIntervalMs: 0, barWidth: 2 });
    ttyBar.start(0);
    now += 1000;
    ttyBar.update({ step: 1, loss: 1, run: 'seed 2 parrot' });
    expect(tty.text).toBe('\r[#.] 1/2  seed 2 parrot  loss 1.0000  1.00 steps/s  ETA 0:01\x1b[K');
  });
});
