import { describe, expect, it } from 'vitest';
import { SeededRandom, createRng } from '../index.js';

describe('SeededRandom', () => {
  it('draws the same stream as core createRng and resumes from a saved state', () => {
    const a = new SeededRandom(42);
    const b = createRng(42);
    for (let i = 0; i < 100; i++) expect(a.next()).toBe(b());
    const state = a.getState();
    const next = [a.next(), a.next(), a.next()];
    const c = new SeededRandom(7);
    c.setState(state);
    expect([c.next(), c.next(), c.next()]).toEqual(next);
  });
  it('shuffles as a permutation, reproducibly', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const s1 = new SeededRandom(1).shuffle([...items]);
    const s2 = new SeededRandom(1).shuffle([...items]);
    expect(s1).toEqual(s2);
    expect([...s1].sort((x, y) => x - y)).toEqual(items);
    expect(s1).not.toEqual(items);
    expect(() => new SeededRandom(1).setState(-1)).toThrow(/state must be a uint32 integer, got -1/);
  });
});
