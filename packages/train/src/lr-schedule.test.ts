import { describe, expect, it } from 'vitest';
import { constantSchedule, cosineScheduleWithWarmup, scheduleFromConfig, warmupStepsFromRatio } from './index.js';

/** HF `_get_cosine_schedule_with_warmup_lr_lambda` (+ min_lr_rate), written out independently. */
function hfCosine(k: number, W: number, S: number, cycles = 0.5, minRate = 0): number {
  if (k < W) return k / Math.max(1, W);
  const progress = (k - W) / Math.max(1, S - W);
  const f = 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress));
  return Math.max(0, f * (1 - minRate) + minRate);
}

describe('learning-rate schedules', () => {
  it('cosine with warmup matches the HF formula and its landmarks', () => {
    const s = cosineScheduleWithWarmup({ warmupSteps: 10, totalSteps: 110 });
    for (let k = 0; k <= 120; k++) expect(s.factor(k)).toBeCloseTo(hfCosine(k, 10, 110), 14);
    expect(s.factor(0)).toBe(0);
    expect(s.factor(5)).toBe(0.5);
    expect(s.factor(10)).toBe(1);
    expect(s.factor(60)).toBeCloseTo(0.5, 14); // half-way through the decay: cos(π/2)
    expect(s.factor(110)).toBeCloseTo(0, 14);
    // Past the end HF does not clamp the progress: the half-wave continues (and rises again).
    expect(s.factor(130)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI * 1.2)), 14);
  });

  it('min lr ratio floors the decay; numCycles changes the wave', () => {
    const s = cosineScheduleWithWarmup({ warmupSteps: 0, totalSteps: 100, minLrRatio: 0.1 });
    for (const k of [0, 1, 33, 50, 99, 100]) expect(s.factor(k)).toBeCloseTo(hfCosine(k, 0, 100, 0.5, 0.1), 14);
    expect(s.factor(100)).toBeCloseTo(0.1, 14);
    const two = cosineScheduleWithWarmup({ warmupSteps: 0, totalSteps: 100, numCycles: 1 });
    expect(two.factor(50)).toBeCloseTo(0, 14);
    expect(two.factor(100)).toBeCloseTo(1, 14);
  });

  it('constant (with optional warmup)', () => {
    const plain = constantSchedule();
    expect([0, 1, 1000].map((k) => plain.factor(k))).toEqual([1, 1, 1]);
    const warm = constantSchedule({ warmupSteps: 4 });
    expect([0, 1, 2, 3, 4, 9].map((k) => warm.factor(k))).toEqual([0, 0.25, 0.5, 0.75, 1, 1]);
  });

  it('rebuilds from config and computes HF warmup steps', () => {
    const s = cosineScheduleWithWarmup({ warmupSteps: 3, totalSteps: 20, minLrRatio: 0.05 });
    const r = scheduleFromConfig(JSON.parse(JSON.stringify(s.config)));
    for (let k = 0; k < 25; k++) expect(r.factor(k)).toBe(s.factor(k));
    expect(warmupStepsFromRatio(0.03, 1000)).toBe(30);
    expect(warmupStepsFromRatio(0.03, 50)).toBe(2); // ceil(1.5)
    expect(warmupStepsFromRatio(0, 50)).toBe(0);
  });

  it('rejects bad arguments naming them', () => {
    expect(() => cosineScheduleWithWarmup({ warmupSteps: -1, totalSteps: 10 })).toThrow(/warmupSteps must be a non-negative integer, got -1/);
    expect(() => cosineScheduleWithWarmup({ warmupSteps: 1, totalSteps: 10, minLrRatio: 2 })).toThrow(/minLrRatio must be in \[0, 1\], got 2/);
    expect(() => constantSchedule().factor(1.5)).toThrow(/step must be a non-negative integer, got 1.5/);
    expect(() => scheduleFromConfig({ type: 'linear' } as never)).toThrow(/config.type must be 'constant' or 'cosine', got "linear"/);
  });
});
