import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { IMAGE_TOKEN_INDEX, loadTokenizer } from '@mllm/models';
import { wingsInstruction, wingsPrompt } from './prompt.js';
import type { WingsModelType } from './checkpoint.js';

const FIXTURES = fileURLToPath(new URL('../__fixtures__/wings/', import.meta.url));

// Recorded by scripts/reference-fixtures/wings_model.py from the authors' infer.py `replace_image_token`
// and `ConversationFormatter.format_query` (with both run scripts' slots).
const recorded = JSON.parse(readFileSync(`${FIXTURES}prompts.json`, 'utf8')) as {
  cases: Array<{ question: string; instruction: string; prompts: Record<WingsModelType, string> }>;
};

describe("Wings' prompt (infer.py)", () => {
  it('replace_image_token: the instruction the authors build for each question', () => {
    expect(recorded.cases.length).toBeGreaterThanOrEqual(5);
    for (const c of recorded.cases) expect(wingsInstruction(c.question)).toBe(c.instruction);
  });

  it("format_query: the authors' prompt string for both variants, ids with IMAGE_TOKEN_INDEX at <image>", async () => {
    const tokenizer = await loadTokenizer(`${FIXTURES}wings-qwen2`);
    for (const c of recorded.cases) {
      for (const type of ['wings_qwen2', 'wings_llama'] as const) {
        const { prompt, inputIds } = wingsPrompt(tokenizer, type, c.question, true);
        expect(prompt).toBe(c.prompts[type]);
        expect(inputIds.filter((id) => id === IMAGE_TOKEN_INDEX)).toHaveLength(1);
      }
    }
    // The ids are the turns tokenized one by one around the image (the formatter's own definition).
    const { inputIds } = wingsPrompt(tokenizer, 'wings_qwen2', 'Hi?', true);
    const turns = ['<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n', '<|im_start|>user\n', '\nHi?<|im_end|>\n', '<|im_start|>assistant\n'];
    const expected = [...tokenizer.encode(turns[0]), ...tokenizer.encode(turns[1]), IMAGE_TOKEN_INDEX, ...tokenizer.encode(turns[2]), ...tokenizer.encode(turns[3])];
    expect(inputIds).toEqual(expected);
  });

  it('a question without an image keeps its text (no <image> is added)', async () => {
    const tokenizer = await loadTokenizer(`${FIXTURES}wings-qwen2`);
    const { prompt, inputIds } = wingsPrompt(tokenizer, 'wings_qwen2', 'Hello', false);
    expect(prompt).toBe('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n');
    expect(inputIds).not.toContain(IMAGE_TOKEN_INDEX);
  });

  it('rejects a non-string question', () => {
    expect(() => wingsInstruction(3 as unknown as string)).toThrow(/question must be a string, got number/);
  });
});
