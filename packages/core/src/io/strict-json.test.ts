import { describe, expect, it } from 'vitest';
import { parseStrictJson, StrictJsonError, type JsonValue } from './strict-json.js';

/** Convert the Map-based result to what JSON.parse returns, for comparison. */
function toPlain(value: JsonValue): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [k, toPlain(v)]));
  if (Array.isArray(value)) return value.map(toPlain);
  return value;
}

const VALID = [
  '{}',
  '[]',
  ' \t\r\n{"a" : [1, -2.5, 3e2, -0.125E-3, 0, true, false, null] } \n',
  '"plain"',
  '"esc \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00 end"',
  '{"nested": {"deep": [[{"x": "y"}], {}]}, "n": 12345678901234567890}',
  '{"ünïcödé 😀": "ok"}',
  '-0',
  '1.5e+10',
];

const INVALID = [
  '',
  '{',
  '{"a":}',
  '{"a":1,}',
  '[1,]',
  '{a:1}',
  "{'a':1}",
  '01',
  '1.',
  '.5',
  '+1',
  'NaN',
  'tru',
  '"\\x41"',
  '"\\u12G4"',
  '"tab\there"',
  '"unterminated',
  '{} {}',
  '{"a" 1}',
  '[1 2]',
];

describe('parseStrictJson', () => {
  it('agrees with JSON.parse on valid documents', () => {
    for (const text of VALID) expect(toPlain(parseStrictJson(text))).toEqual(JSON.parse(text));
  });

  it('rejects everything JSON.parse rejects', () => {
    for (const text of INVALID) {
      expect(() => JSON.parse(text), text).toThrow();
      expect(() => parseStrictJson(text), text).toThrowError(StrictJsonError);
    }
  });

  it('reports duplicated keys with their path (JSON.parse keeps the last silently)', () => {
    expect(JSON.parse('{"a":1,"a":2}')).toEqual({ a: 2 });
    try {
      parseStrictJson('{"t": {"dtype": "F32", "dtype": "I32"}}');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(StrictJsonError);
      expect((error as StrictJsonError).kind).toBe('duplicate-key');
      expect((error as StrictJsonError).keyPath).toEqual(['t', 'dtype']);
    }
    // Escaped spellings of the same key are the same key.
    expect(() => parseStrictJson('{"ab": 1, "a\\u0062": 2}')).toThrow(/duplicated key "ab"/);
  });

  it('keeps __proto__ and constructor as ordinary Map keys', () => {
    const value = parseStrictJson('{"__proto__": {"polluted": 1}, "constructor": 2}') as Map<string, JsonValue>;
    expect(value).toBeInstanceOf(Map);
    expect([...value.keys()]).toEqual(['__proto__', 'constructor']);
    expect((value.get('__proto__') as Map<string, JsonValue>).get('polluted')).toBe(1);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('bounds nesting depth instead of exhausting the stack', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    expect(() => parseStrictJson(deep)).toThrow(/nesting deeper than 64/);
    expect(toPlain(parseStrictJson('[[[1]]]', { maxDepth: 3 }))).toEqual([[[1]]]);
    expect(() => parseStrictJson('[[[1]]]', { maxDepth: 2 })).toThrowError(StrictJsonError);
  });
});
