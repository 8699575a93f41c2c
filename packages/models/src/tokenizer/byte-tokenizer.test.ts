import { describe, expect, it } from 'vitest';
import { ByteTokenizer, DEFAULT_SPECIAL_TOKENS, IGNORE_INDEX, encodeChat } from '../index.js';

const SAMPLES: Record<string, string> = {
  en: 'What colour is the bus? Answer with the letter.',
  zh: '图中的公共汽车是什么颜色？请直接回答选项字母。',
  pt: 'Qual é a cor do ônibus? Responda com a letra da opção — ação, coração, pão.',
  ar: 'ما لون الحافلة في الصورة؟ أجب بحرف الخيار مباشرة.',
  tr: 'Otobüs ne renk? Işık, ılık, İstanbul, iğne — doğrudan harfle yanıtlayın.',
  ru: 'Какого цвета автобус? Ответьте буквой варианта. Ёлка, щётка.',
};

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer();

  it('round-trips text in all six Parrot languages exactly (and emoji / combining marks)', () => {
    for (const [lang, text] of Object.entries(SAMPLES)) {
      const ids = tok.encode(text);
      expect(ids.every((id) => id >= 0 && id < 256), lang).toBe(true);
      expect(ids.length, lang).toBe(new TextEncoder().encode(text).length);
      expect(tok.decode(ids), lang).toBe(text);
    }
    const mixed = 'e\u0301 👩‍🔬 ı İ i̇ \u200f';
    expect(tok.decode(tok.encode(mixed))).toBe(mixed);
  });

  it('byte ids are the UTF-8 bytes (independent check with hand-written encodings)', () => {
    expect(tok.encode('ı')).toEqual([0xc4, 0xb1]); // U+0131
    expect(tok.encode('İ')).toEqual([0xc4, 0xb0]); // U+0130
    expect(tok.encode('中')).toEqual([0xe4, 0xb8, 0xad]);
    expect(tok.encode('ل')).toEqual([0xd9, 0x84]);
  });

  it('decodes invalid byte sequences to U+FFFD and never throws', () => {
    const ids = tok.encode('中');
    expect(tok.decode(ids.slice(0, 2))).toBe('\uFFFD');
    expect(tok.decode([0xff, 0x41])).toBe('\uFFFDA');
    expect(tok.decode([0xe4, 0xb8, tok.eosId, 0x41])).toBe('\uFFFD<eos>A');
    expect(tok.decode([0xe4, tok.eosId, 0x41], { skipSpecialTokens: true })).toBe('\uFFFDA');
    expect(tok.decode([999, -3, 1.5, 0x41])).toBe('\uFFFD\uFFFD\uFFFDA');
  });

  it('has the special tokens after the bytes and maps <image> only when allowed', () => {
    expect(tok.vocabSize).toBe(256 + DEFAULT_SPECIAL_TOKENS.length);
    expect(tok.padId).toBe(256);
    expect(tok.imageId).toBe(256 + DEFAULT_SPECIAL_TOKENS.indexOf('<image>'));
    expect(tok.encode('a<image>b', { allowImage: true })).toEqual([0x61, tok.imageId, 0x62]);
    expect(tok.encode('a<image>b')).toEqual([...new TextEncoder().encode('a<image>b')]);
    expect(tok.encode('<|im_end|>')).not.toContain(tok.imEndId);
    expect(() => tok.specialId('<mask>')).toThrow(/unknown special token '<mask>'/);
    expect(() => new ByteTokenizer(['<pad>'])).toThrow(/must include '<bos>'/);
    expect(ByteTokenizer.fromJSON(tok.toJSON()).vocabSize).toBe(tok.vocabSize);
  });
});

describe('encodeChat', () => {
  const tok = new ByteTokenizer();
  const bytes = (s: string) => [...new TextEncoder().encode(s)];

  it('builds the ChatML layout, supervising only assistant answers (+ <|im_end|>; final turn without \\n)', () => {
    const question = `<image>\n${SAMPLES.ar}`;
    const answer = SAMPLES.tr;
    const enc = encodeChat(tok, [{ role: 'user', content: question }, { role: 'assistant', content: answer }]);
    const system = [tok.imStartId, ...bytes('system\nYou are a helpful assistant.'), tok.imEndId, ...bytes('\n')];
    const user = [tok.imStartId, ...bytes('user\n'), tok.imageId, ...bytes(`\n${SAMPLES.ar}`), tok.imEndId, ...bytes('\n')];
    const header = [tok.imStartId, ...bytes('assistant\n')];
    const body = [...bytes(answer), tok.imEndId]; // final turn: no trailing newline (Parrot's formatter)
    expect(enc.inputIds).toEqual([...system, ...user, ...header, ...body]);
    const nPrompt = system.length + user.length + header.length;
    expect(enc.labels).toEqual([...new Array(nPrompt).fill(IGNORE_INDEX), ...body]);
    const imageAt = system.length + user.indexOf(tok.imageId);
    expect(enc.imagePositions).toEqual([imageAt]);
    expect(enc.promptMask).toEqual(enc.inputIds.map((_, i) => (i < nPrompt && i !== imageAt ? 1 : 0)));
    expect(enc.systemMask).toEqual(enc.inputIds.map((_, i) => (i < system.length ? 1 : 0)));
    // the answer decodes back exactly from the supervised labels
    expect(tok.decode(enc.labels.filter((l) => l !== IGNORE_INDEX), { skipSpecialTokens: true })).toBe(answer);
  });

  it('handles multi-turn, no system prompt, several images and the generation preface', () => {
    const enc = encodeChat(tok, [
      { role: 'user', content: '<image><image>Сравните.' },
      { role: 'assistant', content: '一样' },
      { role: 'user', content: 'Por quê?' },
    ], { systemPrompt: null, addGenerationPrompt: true });
    expect(enc.systemMask.every((v) => v === 0)).toBe(true);
    expect(enc.imagePositions).toEqual([1 + bytes('user\n').length, 2 + bytes('user\n').length]);
    const supervised = enc.labels.filter((l) => l !== IGNORE_INDEX);
    expect(supervised).toEqual([...bytes('一样'), tok.imEndId, ...bytes('\n')]);
    expect(enc.inputIds.slice(-1 - bytes('assistant\n').length)).toEqual([tok.imStartId, ...bytes('assistant\n')]);
    const promptCount = enc.promptMask.reduce((a, b) => a + b, 0);
    expect(promptCount).toBe(enc.inputIds.length - supervised.length - 2);
    expect(() => encodeChat(tok, [{ role: 'user', content: 'a' }, { role: 'system', content: 'b' }])).toThrow(/system message must be first/);
    expect(() => encodeChat(tok, [{ role: 'bot' as 'user', content: 'a' }])).toThrow(/messages\[0\]/);
  });
});

describe('ByteTokenizer decode is exact around special tokens', () => {
  it('keeps U+FEFF at the start and after every special token; a lone surrogate is U+FFFD as documented', () => {
    const tok = new ByteTokenizer();
    for (const text of ['\uFEFF', '\uFEFFa', 'a\uFEFF', '<bos>\uFEFFx<eos>\uFEFF', '\uFEFF<image>\uFEFF\uFEFF', '<|im_start|>\uFEFFuser<|im_end|>']) {
      const ids = tok.encode(text, { allowImage: true });
      expect(tok.decode(ids), JSON.stringify(text)).toBe(text);
    }
    // [bos] EF BB BF 61: the BOM bytes right after a special token survive
    expect(tok.decode([tok.bosId, 0xef, 0xbb, 0xbf, 0x61])).toBe('<bos>\uFEFFa');
    expect(tok.decode([tok.bosId, 0xef, 0xbb, 0xbf, 0x61], { skipSpecialTokens: true })).toBe('\uFEFFa');
    // Lone surrogates have no UTF-8 form: encoded as U+FFFD (EF BF BD), decoded as U+FFFD.
    expect(tok.encode('a\uD800b')).toEqual([0x61, 0xef, 0xbf, 0xbd, 0x62]);
    expect(tok.decode(tok.encode('a\uD800b\uDC00'))).toBe('a\uFFFDb\uFFFD');
    // A well-formed pair decodes back exactly.
    expect(tok.decode(tok.encode('a\uD83D\uDE00'))).toBe('a\uD83D\uDE00');
  });
});
