import { describe, expect, it } from 'vitest';
import {
  answerTokens,
  extractAnswer,
  inferOptionByText,
  inferOptionLetter,
  postprocessAnswer,
  stripToOptionLetter,
} from './answer-extraction.js';
import type { OptionChoice } from './benchmark-reader.js';
import { ANSWER_INSTRUCTIONS } from './languages.js';

const options: OptionChoice[] = [
  { letter: 'A', text: 'red apple' },
  { letter: 'B', text: 'banana' },
  { letter: 'C', text: 'cherry' },
];

describe('letter extraction', () => {
  it('accepts exactly one option letter appearing as a token', () => {
    expect(inferOptionLetter('B', options)).toBe('B');
    expect(inferOptionLetter('(B)', options)).toBe('B');
    expect(inferOptionLetter('B. banana', options)).toBe('B');
    expect(inferOptionLetter('The answer is C.', options)).toBe('C');
    expect(inferOptionLetter('[C]: cherry', options)).toBe('C');
    expect(inferOptionLetter('**A**', options)).toBe('A');
    expect(inferOptionLetter('B B B', options)).toBe('B'); // one distinct letter
  });

  it('does not count a letter inside a word ("An apple", "Banana")', () => {
    expect(answerTokens('An apple, (really)!')).toEqual(['An', 'apple', 'really']);
    expect(inferOptionLetter('An apple', options)).toBeUndefined();
    expect(inferOptionLetter('Banana', options)).toBeUndefined();
    expect(inferOptionLetter('b', options)).toBeUndefined(); // lower case is not a letter answer
  });

  it('rejects two or more distinct letters', () => {
    expect(inferOptionLetter('A or B', options)).toBeUndefined();
    expect(inferOptionLetter('A. red apple\nC. cherry', options)).toBeUndefined();
  });

  it('only counts letters of present options', () => {
    expect(inferOptionLetter('D', options)).toBeUndefined();
    expect(inferOptionLetter('D or B', options)).toBe('B');
  });

  it('maps refusals and a lone Z to Z, and never reads an API failure as a letter', () => {
    expect(inferOptionLetter("I'm sorry, but without the image provided I cannot say. A", options)).toBe('Z');
    expect(inferOptionLetter('Cannot determine the answer', options)).toBe('Z');
    expect(inferOptionLetter('Z', options)).toBe('Z');
    expect(inferOptionLetter('Z or A', options)).toBe('A');
    expect(inferOptionLetter('Failed to obtain answer via API. A', options)).toBeUndefined();
    expect(extractAnswer('Failed to obtain answer via API: banana', options)).toEqual({ letter: 'B', method: 'text' });
  });
});

describe('option-text extraction', () => {
  it('accepts exactly one option text contained in the answer, case-insensitively', () => {
    expect(inferOptionByText('It is a Banana.', options)).toBe('B');
    expect(inferOptionByText('I see a RED APPLE here', options)).toBe('A');
    expect(inferOptionByText('banana and cherry', options)).toBeUndefined();
    expect(inferOptionByText('a plum', options)).toBeUndefined();
  });

  it('works for non-Latin scripts', () => {
    const russian: OptionChoice[] = [
      { letter: 'A', text: 'Красный' },
      { letter: 'B', text: 'синий' },
    ];
    expect(inferOptionByText('Цвет — красный.', russian)).toBe('A');
  });
});

describe('extractAnswer', () => {
  it('tries the letter first, then the text', () => {
    expect(extractAnswer('C', options)).toEqual({ letter: 'C', method: 'letter' });
    // "A" as a token wins over the text "banana".
    expect(extractAnswer('A banana', options)).toEqual({ letter: 'A', method: 'letter' });
    expect(extractAnswer('An apple? no, a cherry', options)).toEqual({ letter: 'C', method: 'text' });
    expect(extractAnswer('Z', options)).toEqual({ letter: 'Z', method: 'refusal' });
    expect(extractAnswer('A or B', options)).toBeUndefined();
    expect(extractAnswer('a plum', options)).toBeUndefined();
  });
});

describe('Parrot post-processing', () => {
  it('reduces a generation to a leading or trailing capital letter, or the part after "answer is"', () => {
    expect(stripToOptionLetter('B. banana')).toBe('B');
    expect(stripToOptionLetter('  (C) cherry ')).toBe('C');
    expect(stripToOptionLetter('it is B')).toBe('B');
    expect(stripToOptionLetter('I think it is B')).toBe('I'); // leading capital + space wins (reference quirk)
    expect(stripToOptionLetter('The correct answer is option C, cherry.')).toBe('C');
    expect(stripToOptionLetter('answer: banana')).toBe('banana');
    expect(stripToOptionLetter('An apple')).toBe('An apple');
    expect(stripToOptionLetter('A cat')).toBe('A'); // the quantifier trap, as in the reference
    expect(stripToOptionLetter('B')).toBe('B');
    expect(stripToOptionLetter('...')).toBe('');
  });

  it('applies per mode: all, reference (English instruction only) or none', () => {
    const english = `Q\nA. x\nB. y\n${ANSWER_INSTRUCTIONS.en}`;
    const portuguese = `Q\nA. x\nB. y\n${ANSWER_INSTRUCTIONS.pt}`;
    expect(postprocessAnswer(' B. y\n', portuguese, 'all')).toBe('B');
    expect(postprocessAnswer(' B. y\n', english, 'reference')).toBe('B');
    expect(postprocessAnswer(' B. y\n', portuguese, 'reference')).toBe('B. y');
    expect(postprocessAnswer(' B. y\n', english, 'none')).toBe('B. y');
    expect(() => postprocessAnswer('B', english, 'some' as 'all')).toThrow(/postprocess: expected/);
  });
});
