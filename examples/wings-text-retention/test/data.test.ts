/** The example's data: answers follow from the prompts, the held-out split never reaches training. */
import { describe, expect, it } from 'vitest';
import { createRng } from '@mllm/core';
import { COLOURS } from '../../parrot-multilingual/src/scenes.js';
import { IMAGE_PROMPT, LETTERS, exampleTokenizer, heldOutImageItems, heldOutTextItems, imageSplitOf, sampleImageItem, sampleTextItem, splitOf } from '../src/data.js';

describe('wings-text-retention data', () => {
  it('text items: the answer is the one letter among four digits, and the split is respected', () => {
    const rng = createRng(7);
    const heldOut = new Set(heldOutTextItems(40, createRng(1)).map((i) => i.prompt));
    expect(heldOut.size).toBe(40);
    for (let k = 0; k < 300; k++) {
      const item = sampleTextItem(rng, 'train');
      const tokens = item.prompt.replace('?', '').split(' ');
      expect(tokens).toHaveLength(5);
      expect(tokens.filter((t) => /^[0-9]$/.test(t))).toHaveLength(4);
      expect(tokens.filter((t) => (LETTERS as readonly string[]).includes(t))).toEqual([item.answer]);
      expect(heldOut.has(item.prompt)).toBe(false);
    }
    expect(splitOf('x') === splitOf('x')).toBe(true);
  });

  it('image items: the answer letter names the drawn colour; held-out combinations never sampled for training', () => {
    const rng = createRng(9);
    for (let k = 0; k < 100; k++) {
      const item = sampleImageItem(rng, 'train', 16);
      expect(item.prompt).toBe(IMAGE_PROMPT);
      const colour = COLOURS[LETTERS.indexOf(item.answer)];
      // Pixels that are not the grey background carry the colour the answer names.
      const px = item.pixels!;
      let shapePixels = 0;
      for (let i = 0; i < px.length; i += 3) {
        const [r, g, b] = [px[i], px[i + 1], px[i + 2]];
        if (r === g && g === b) continue; // background
        shapePixels++;
        const seen = r > 0.5 && g > 0.5 ? 'yellow' : r > 0.5 ? 'red' : g > 0.5 ? 'green' : 'blue';
        expect(seen).toBe(colour);
      }
      expect(shapePixels).toBeGreaterThan(3);
    }
    const held = heldOutImageItems(16, 2, createRng(3));
    expect(held.length).toBeGreaterThan(0);
    expect(held.length % 2).toBe(0);
    let heldCount = 0;
    for (const c of COLOURS) for (const s of ['square', 'circle', 'triangle', 'cross'] as const) for (const p of ['left', 'right', 'top', 'bottom'] as const) if (imageSplitOf(c, s, p) === 'heldout') heldCount++;
    expect(held.length).toBe(2 * heldCount);
  });

  it('the tokenizer encodes every prompt character and each answer letter as one token', () => {
    const tokenizer = exampleTokenizer();
    for (const letter of LETTERS) expect(tokenizer.encode(letter)).toHaveLength(1);
    const decoded = tokenizer.decode(tokenizer.encode(IMAGE_PROMPT));
    expect(decoded).toBe(IMAGE_PROMPT);
  });
});
