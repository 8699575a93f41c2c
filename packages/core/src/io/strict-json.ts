/**
 * A strict JSON (RFC 8259) parser for untrusted headers.
 *
 * Unlike `JSON.parse` it
 * - rejects duplicated keys in any object (`JSON.parse` silently keeps the last one),
 * - returns objects as `Map`s, so keys like `__proto__` or `constructor` are ordinary keys and
 *   can never reach an object prototype,
 * - bounds the nesting depth (no stack exhaustion on `[[[[…`).
 */

/** A parsed JSON value; objects are `Map`s in document order. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;

export class StrictJsonError extends Error {
  constructor(
    /** `syntax` for malformed text, `duplicate-key` for a key repeated in one object. */
    readonly kind: 'syntax' | 'duplicate-key' | 'too-deep',
    message: string,
    /** Character offset in the text. */
    readonly position: number,
    /** For `duplicate-key`: the keys leading to the object and the repeated key last. */
    readonly keyPath: readonly string[] = [],
  ) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

export interface StrictJsonOptions {
  /** Maximum nesting depth of arrays and objects (default 64). */
  maxDepth?: number;
}

const NUMBER_PATTERN = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** True for a JSON object value (a `Map`). */
export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return value instanceof Map;
}

/** Short human-readable rendering of a JSON value for error messages. */
export function describeJsonValue(value: JsonValue | undefined): string {
  if (value === undefined) return 'nothing';
  if (value instanceof Map) return 'an object';
  if (Array.isArray(value)) {
    const inner = value.slice(0, 8).map((v) => (v instanceof Map ? '{…}' : Array.isArray(v) ? '[…]' : JSON.stringify(v)));
    return `[${inner.join(', ')}${value.length > 8 ? ', …' : ''}]`;
  }
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/** Parse `text` as one JSON value (surrounding whitespace allowed). Throws `StrictJsonError`. */
export function parseStrictJson(text: string, options: StrictJsonOptions = {}): JsonValue {
  const maxDepth = options.maxDepth ?? 64;
  let position = 0;
  const keyPath: string[] = [];

  const fail = (message: string, at = position): never => {
    throw new StrictJsonError('syntax', `${message} at position ${at}`, at);
  };
  const skipWhitespace = (): void => {
    while (position < text.length) {
      const c = text.charCodeAt(position);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) position++;
      else break;
    }
  };
  const expectLiteral = (literal: string, value: JsonValue): JsonValue => {
    if (text.startsWith(literal, position)) {
      position += literal.length;
      return value;
    }
    return fail(`unexpected token ${JSON.stringify(text.slice(position, position + 8))}`);
  };

  const parseString = (): string => {
    // text[position] is the opening quote.
    position++;
    let result = '';
    let chunkStart = position;
    for (;;) {
      if (position >= text.length) fail('unterminated string');
      const c = text.charCodeAt(position);
      if (c === 0x22) {
        result += text.slice(chunkStart, position);
        position++;
        return result;
      }
      if (c < 0x20) fail(`unescaped control character U+${c.toString(16).padStart(4, '0')} in string`);
      if (c !== 0x5c) {
        position++;
        continue;
      }
      result += text.slice(chunkStart, position);
      const escape = text[position + 1];
      switch (escape) {
        case '"': result += '"'; break;
        case '\\': result += '\\'; break;
        case '/': result += '/'; break;
        case 'b': result += '\b'; break;
        case 'f': result += '\f'; break;
        case 'n': result += '\n'; break;
        case 'r': result += '\r'; break;
        case 't': result += '\t'; break;
        case 'u': {
          const hex = text.slice(position + 2, position + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('invalid \\u escape');
          result += String.fromCharCode(parseInt(hex, 16));
          position += 4;
          break;
        }
        default:
          fail(`invalid escape ${JSON.stringify(`\\${escape ?? ''}`)}`);
      }
      position += 2;
      chunkStart = position;
    }
  };

  const parseNumber = (): number => {
    NUMBER_PATTERN.lastIndex = position;
    const match = NUMBER_PATTERN.exec(text);
    if (!match) return fail('invalid number');
    position += match[0].length;
    return Number(match[0]);
  };

  const parseValue = (depth: number): JsonValue => {
    skipWhitespace();
    if (position >= text.length) return fail('unexpected end of input');
    const c = text[position];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) {
        throw new StrictJsonError('too-deep', `nesting deeper than ${maxDepth} at position ${position}`, position);
      }
      return c === '{' ? parseObject(depth + 1) : parseArray(depth + 1);
    }
    if (c === '"') return parseString();
    if (c === 't') return expectLiteral('true', true);
    if (c === 'f') return expectLiteral('false', false);
    if (c === 'n') return expectLiteral('null', null);
    if (c === '-' || (c >= '0' && c <= '9')) return parseNumber();
    return fail(`unexpected character ${JSON.stringify(c)}`);
  };

  const parseArray = (depth: number): JsonValue[] => {
    position++; // [
    const items: JsonValue[] = [];
    skipWhitespace();
    if (text[position] === ']') {
      position++;
      return items;
    }
    for (;;) {
      items.push(parseValue(depth));
      skipWhitespace();
      const c = text[position];
      position++;
      if (c === ']') return items;
      if (c !== ',') fail("expected ',' or ']' in array", position - 1);
    }
  };

  const parseObject = (depth: number): JsonObject => {
    const objectStart = position;
    position++; // {
    const entries: JsonObject = new Map();
    skipWhitespace();
    if (text[position] === '}') {
      position++;
      return entries;
    }
    for (;;) {
      skipWhitespace();
      if (text[position] !== '"') fail('expected a string key in object');
      const keyPosition = position;
      const key = parseString();
      if (entries.has(key)) {
        const path = [...keyPath, key];
        throw new StrictJsonError(
          'duplicate-key',
          `duplicated key ${JSON.stringify(key)}${keyPath.length ? ` inside ${keyPath.map((k) => JSON.stringify(k)).join(' → ')}` : ''} ` +
            `at position ${keyPosition} (object starting at ${objectStart})`,
          keyPosition,
          path,
        );
      }
      skipWhitespace();
      if (text[position] !== ':') fail("expected ':' after object key");
      position++;
      keyPath.push(key);
      const value = parseValue(depth);
      keyPath.pop();
      entries.set(key, value);
      skipWhitespace();
      const c = text[position];
      position++;
      if (c === '}') return entries;
      if (c !== ',') fail("expected ',' or '}' in object", position - 1);
    }
  };

  const value = parseValue(0);
  skipWhitespace();
  if (position !== text.length) fail('unexpected data after the JSON value');
  return value;
}
