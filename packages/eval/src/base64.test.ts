import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeBase64, Base64Error } from './base64.js';

describe('base64', () => {
  it('round-trips every length mod 3 and agrees with Node Buffer', () => {
    for (let length = 0; length < 10; length++) {
      const bytes = Uint8Array.from({ length }, (_, i) => (i * 91 + 7) % 256);
      const text = encodeBase64(bytes);
      expect(text).toBe(Buffer.from(bytes).toString('base64'));
      if (length > 0) expect([...decodeBase64(text)]).toEqual([...bytes]);
    }
  });

  it('accepts unpadded text and embedded whitespace', () => {
    expect([...decodeBase64('AQID')]).toEqual([1, 2, 3]);
    expect([...decodeBase64('AQI')]).toEqual([1, 2]);
    expect([...decodeBase64('AQ\nID')]).toEqual([1, 2, 3]);
  });

  it('rejects characters outside the alphabet, naming the position', () => {
    expect(() => decodeBase64('AQ!D')).toThrow(Base64Error);
    expect(() => decodeBase64('AQ!D')).toThrow(/'?"!"'? at position 2/);
    expect(() => decodeBase64('A')).toThrow(/impossible/);
    expect(() => decodeBase64('')).toThrow(/empty/);
    expect(() => decodeBase64('AQI==')).toThrow(/divisible by 4/);
  });
});
