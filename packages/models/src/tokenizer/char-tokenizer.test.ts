import { describe, expect, it } from 'vitest';
import { CharTokenizer, IGNORE_INDEX, encodeChat, tokenizerFromSpec } from '../index.js';

const TEXTS = [
  'What colour is the bus?',
  '图中的公共汽车是什么颜色？',
  'Qual é a cor do ônibus? ação, coração',
  'ما لون الحافلة في الصورة؟',
  'Otobüs ne renk? Işık, ılık, İstanbul',
  'Какого цвета автобус? Ёлка 👩‍🔬',
];

describe('CharTokenizer', () => {
  const tok = CharTokenizer.fromTexts(TEXTS);

  it('round-trips every training text with one id per code point', () => {
    for (const text of TEXTS) {
      const ids = tok.encode(text);
      expect(ids.length).toBe([...text].length);
      expect(ids).not.toContain(tok.unkId);
      expect(tok.decode(ids)).toBe(text);
    }
    expect(tok.encode('ı')).not.toEqual(tok.encode('i'));
    expect(tok.encode('İ')).toHaveLength(1);
  });

  it('maps unseen characters to <unk> and decodes bad ids to U+FFFD without throwing', () => {
    const ids = tok.encode('Z€');
    expect(ids).toEqual([tok.unkId, tok.unkId]);
    expect(tok.decode([...ids, 10_000, -1, tok.eosId], { skipSpecialTokens: true })).toBe('\uFFFD\uFFFD\uFFFD\uFFFD');
    expect(tok.decode([tok.imageId])).toBe('<image>');
  });

  it('works with the chat template and survives its saved description', () => {
    const enc = encodeChat(tok, [{ role: 'user', content: '<image>\nКакого цвета автобус?' }, { role: 'assistant', content: 'ما لون' }]);
    expect(enc.imagePositions).toHaveLength(1);
    expect(tok.decode(enc.labels.filter((l) => l !== IGNORE_INDEX), { skipSpecialTokens: true })).toBe('ما لون');
    const copy = tokenizerFromSpec(tok.toJSON());
    expect(copy.vocabSize).toBe(tok.vocabSize);
    expect(copy.encode(TEXTS[1])).toEqual(tok.encode(TEXTS[1]));
    expect(() => new CharTokenizer(['ab'])).toThrow(/characters\[0\] must be one code point/);
    expect(() => tokenizerFromSpec({ type: 'bpe' } as never)).toThrow(/type must be 'byte' or 'char', got "bpe"/);
  });
});
