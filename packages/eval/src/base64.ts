/**
 * Strict base64 (RFC 4648 standard alphabet, optional `=` padding, whitespace ignored).
 * Lenient decoders such as Node's `Buffer.from(s, 'base64')` silently drop invalid characters,
 * which would turn a corrupted image field into garbage bytes; this one rejects them.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const LOOKUP = (() => {
  const table = new Int16Array(128).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) table[ALPHABET.charCodeAt(i)] = i;
  return table;
})();

/** Thrown by {@link decodeBase64} for text that is not valid base64. */
export class Base64Error extends Error {
  override name = 'Base64Error';
}

/** Decodes base64 text to bytes; throws {@link Base64Error} naming the first offending position. */
export function decodeBase64(text: string): Uint8Array {
  const compact = text.replace(/[\s]+/g, '');
  let end = compact.length;
  let padding = 0;
  while (end > 0 && compact.charCodeAt(end - 1) === 61 /* = */ && padding < 2) {
    end--;
    padding++;
  }
  if (compact.length === 0) throw new Base64Error('base64 text is empty');
  if (padding > 0 && compact.length % 4 !== 0) {
    throw new Base64Error(`padded base64 must have a length divisible by 4, got ${compact.length}`);
  }
  const remainder = end % 4;
  if (remainder === 1) throw new Base64Error(`base64 data length ${end} is impossible (length mod 4 = 1)`);
  const byteLength = Math.floor((end * 3) / 4);
  const bytes = new Uint8Array(byteLength);
  let accumulator = 0;
  let bits = 0;
  let out = 0;
  for (let i = 0; i < end; i++) {
    const code = compact.charCodeAt(i);
    const value = code < 128 ? LOOKUP[code] : -1;
    if (value < 0) {
      throw new Base64Error(`invalid base64 character ${JSON.stringify(compact[i])} at position ${i}`);
    }
    accumulator = (accumulator << 6) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[out++] = (accumulator >> bits) & 0xff;
    }
  }
  return bytes;
}

/** Encodes bytes as padded standard base64. */
export function encodeBase64(bytes: Uint8Array): string {
  let result = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    result += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    result += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63] + '==';
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    result += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + '=';
  }
  return result;
}
