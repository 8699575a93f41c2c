/** The run's reporting helpers. */
import { describe, expect, it } from 'vitest';
import { BUDGETS, FEW_SEEDS, fewSeedsWarning } from '../src/run-example.js';

describe('wings-text-retention few-seeds warning', () => {
  it('counts the distinct seed multisets a bootstrap over N seeds can draw (C(2N − 1, N), by enumeration) and is silent from FEW_SEEDS on', () => {
    const multisets = (n: number): number => {
      const seen = new Set<string>();
      const walk = (picked: number[]) => {
        if (picked.length === n) return void seen.add([...picked].sort().join(','));
        for (let s = 0; s < n; s++) walk([...picked, s]);
      };
      walk([]);
      return seen.size;
    };
    for (const n of [1, 2, 3, 4]) expect(fewSeedsWarning(n)).toContain(`With ${n} seed(s) the bootstrap draws only ${multisets(n)} different seed set(s)`);
    expect(fewSeedsWarning(FEW_SEEDS)).toBe('');
    expect(fewSeedsWarning(BUDGETS.full.seeds.length)).toBe('');
  });
});
