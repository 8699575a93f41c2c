import { describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Linear } from '@mllm/core';
import { groupedBarSpec, markdownTable, meanStd, parseExampleFlags, renderSvg, zeroParameters } from '../src/index.js';

describe('example helpers', () => {
  it('renders a grouped bar chart to SVG with one rect per bar', async () => {
    const svg = await renderSvg(groupedBarSpec({
      title: 't', yTitle: 'acc',
      rows: [{ group: 'en', series: 'a', value: 0.5 }, { group: 'en', series: 'b', value: 0.7 }, { group: 'zh', series: 'a', value: 0.2 }],
    }));
    expect(svg.startsWith('<svg')).toBe(true);
    expect((svg.match(/role-mark.*?marktype="rect"|<path[^>]*aria-roledescription="bar"/g) ?? []).length).toBeGreaterThan(0);
  });
  it('parses flags and rejects bad ones', () => {
    const f = parseExampleFlags(['--backend', 'cpu', '--steps=5', '--seeds', '1,2,3', '--out', 'x', '--smoke'], { out: 'o', seeds: [0] });
    expect(f).toMatchObject({ backend: 'cpu', steps: 5, seeds: [1, 2, 3], smoke: true });
    expect(f.out).toBe(resolve(process.env.INIT_CWD ?? process.cwd(), 'x'));
    expect(parseExampleFlags(['--out', '/abs/dir'], { out: 'o', seeds: [0] }).out).toBe('/abs/dir');
    expect(() => parseExampleFlags(['--steps', '-1'], { out: 'o', seeds: [0] })).toThrow(/--steps must be a positive integer/);
    expect(() => parseExampleFlags(['--bogus'], { out: 'o', seeds: [0] })).toThrow(/unknown flag/);
    expect(() => parseExampleFlags(['--backend', 'gpu'], { out: 'o', seeds: [0] })).toThrow(/--backend must be one of/);
  });
  it('zeroParameters writes 0 into every parameter of the module it is given, and nothing else, without leaking', () => {
    const off = new Linear({ inFeatures: 3, outFeatures: 2 });
    const kept = new Linear({ inFeatures: 3, outFeatures: 2 });
    const keptBefore = kept.namedParameters().map(([, p]) => Array.from(p.variable.read().dataSync()));
    expect(off.namedParameters().some(([, p]) => Array.from(p.variable.read().dataSync()).some((v) => v !== 0))).toBe(true);
    const before = tf.memory().numTensors;
    zeroParameters(off);
    expect(tf.memory().numTensors).toBe(before);
    for (const [, p] of off.namedParameters()) expect(Array.from(p.variable.read().dataSync()).every((v) => v === 0)).toBe(true);
    expect(kept.namedParameters().map(([, p]) => Array.from(p.variable.read().dataSync()))).toEqual(keptBefore);
    off.dispose();
    kept.dispose();
  });
  it('formats tables and statistics', () => {
    expect(markdownTable(['a', 'b'], [[1, 0.5]])).toBe('| a | b     |\n| - | ----- |\n| 1 | 0.500 |');
    const s = meanStd([1, 2, 3]);
    expect(s.mean).toBe(2);
    expect(s.std).toBeCloseTo(1, 12);
  });
});

describe('dose-response plot', () => {
  it('renders the CI band as an area and the curve with its points', async () => {
    const { doseResponseSpec } = await import('../src/index.js');
    const rows = [0.01, 0.02, 0.05, 0.1].flatMap((x, i) => [
      { x, value: 0.1 * i, low: 0.1 * i - 0.05, high: 0.1 * i + 0.05, series: 'parrot − baseline' },
    ]);
    const spec = doseResponseSpec({ title: 'gain', rows, xTitle: 'non-English share', yTitle: 'Δ', xScale: 'log', zeroLine: true });
    const svg = await renderSvg(spec);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toMatch(/aria-roledescription="area mark"/);
    expect(svg).toMatch(/aria-roledescription="line mark"/);
    expect((svg.match(/aria-roledescription="point"/g) ?? []).length).toBe(4);
  });
});
