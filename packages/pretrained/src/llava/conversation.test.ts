/**
 * The plain-LLaVA prompt formats on the two hand-written tokenizers of @mllm/models' test fixtures
 * (a Qwen2 byte-level BPE with ChatML tokens and Qwen2-Instruct's chat template; a LLaMA
 * SentencePiece-style BPE with `<s>`, no template). Expected prompts are the authors' templates
 * written out; expected ids are each text chunk tokenized alone with −200 between (LLaVA's
 * `tokenizer_image_token`), so what is checked is the format, the image placement and the BOS handling.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import { HFTokenizer, IMAGE_TOKEN_INDEX as I } from '@mllm/models';
import { BUNNY_SYSTEM, LLAVA_V1_SYSTEM, llavaPrompt, pickLlavaConversation } from './conversation.js';

const fixture = (name: string, file: string) =>
  JSON.parse(readFileSync(fileURLToPath(new URL(`../../../models/test-fixtures/tokenizers/${name}/${file}`, import.meta.url)), 'utf8'));
const qwenJson = fixture('qwen2-bpe', 'tokenizer.json');
const qwenConfig = fixture('qwen2-bpe', 'tokenizer_config.json');
const llamaJson = fixture('llama-bpe', 'tokenizer.json');
const llamaConfig = fixture('llama-bpe', 'tokenizer_config.json');
const qwen = HFTokenizer.fromObjects(qwenJson, qwenConfig);
const qwenNoTemplate = HFTokenizer.fromObjects(qwenJson, { ...qwenConfig, chat_template: null });
const llama = HFTokenizer.fromObjects(llamaJson, llamaConfig);

describe.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'prompt formatting makes no tensors; the cpu project covers it'))('LLaVA conversation formats', () => {
  it('picks the chat template, then Bunny by model_type, then ChatML by vocabulary, else llava_v1', () => {
    expect(pickLlavaConversation({ model_type: 'llava_qwen2' }, qwen)).toBe('chat_template');
    expect(pickLlavaConversation({ model_type: 'bunny-qwen2' }, qwen)).toBe('chat_template');
    expect(pickLlavaConversation({ model_type: 'bunny-qwen2' }, qwenNoTemplate)).toBe('bunny');
    expect(pickLlavaConversation({ model_type: 'llava_qwen2' }, qwenNoTemplate)).toBe('chatml');
    expect(pickLlavaConversation({ model_type: 'llava_llama' }, llama)).toBe('llava_v1');
    expect(pickLlavaConversation({ model_type: 'bunny-llama' }, llama)).toBe('bunny');
  });

  it("llava_v1: LLaVA-1.5's vicuna_v1 prompt, one <s>, an image placeholder per image, stop at </s>", () => {
    const out = llavaPrompt(llama, 'llava_v1', 'hello', 2);
    expect(out.prompt).toBe(`${LLAVA_V1_SYSTEM} USER: <image>\n<image>\nhello ASSISTANT:`);
    expect(out.inputIds).toEqual([1, ...llama.encode(`${LLAVA_V1_SYSTEM} USER: `), I, ...llama.encode('\n'), I, ...llama.encode('\nhello ASSISTANT:')]);
    expect(out.stopIds).toEqual([2]);
    const noImage = llavaPrompt(llama, 'llava_v1', 'hello', 0);
    expect(noImage.inputIds).toEqual([1, ...llama.encode(`${LLAVA_V1_SYSTEM} USER: hello ASSISTANT:`)]);
  });

  it("bunny: conv_bunny's prompt (the system prompt addresses the user)", () => {
    const out = llavaPrompt(llama, 'bunny', 'hello', 1);
    expect(out.prompt).toBe(`${BUNNY_SYSTEM} USER: <image>\nhello ASSISTANT:`);
    expect(out.inputIds).toEqual([1, ...llama.encode(`${BUNNY_SYSTEM} USER: `), I, ...llama.encode('\nhello ASSISTANT:')]);
    expect(llavaPrompt(qwenNoTemplate, 'bunny', 'hello', 1).stopIds).toEqual([265, 263]); // eos <|im_end|>, sep2 <|endoftext|>
  });

  it("chat_template and Parrot's ChatML formatter give the same Qwen2 prompt and ids; stop at <|im_end|>", () => {
    const expected = '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nhello<|im_end|>\n<|im_start|>assistant\n';
    const fromTemplate = llavaPrompt(qwen, 'chat_template', 'hello', 1);
    const fromFormatter = llavaPrompt(qwenNoTemplate, 'chatml', 'hello', 1);
    expect([fromTemplate.prompt, fromFormatter.prompt]).toEqual([expected, expected]);
    const ids = [...qwen.encode('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n'), I, ...qwen.encode('\nhello<|im_end|>\n<|im_start|>assistant\n')];
    expect(fromTemplate.inputIds).toEqual(ids);
    expect(fromFormatter.inputIds).toEqual(ids);
    expect(ids.filter((id) => id === I)).toHaveLength(1);
    expect(fromTemplate.stopIds).toEqual([265]);
  });

  it('a template that writes bos_token as text keeps one <s> (the tokenizer adds it again)', () => {
    const templated = HFTokenizer.fromObjects(llamaJson, { ...llamaConfig, chat_template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %} [assistant]' });
    const out = llavaPrompt(templated, 'chat_template', 'hello', 1);
    expect(out.prompt).toBe('<s>[user] <image>\nhello [assistant]');
    expect(out.inputIds.slice(0, 2)).toEqual([1, ...llama.encode('[user] ').slice(0, 1)]);
    expect(out.inputIds.filter((id) => id === 1)).toHaveLength(1);
  });

  it('bad input names the argument', () => {
    expect(() => llavaPrompt(llama, 'vicuna' as never, 'q', 1)).toThrow(/style must be one of chat_template, bunny, chatml, llava_v1, got "vicuna"/);
    expect(() => llavaPrompt(llama, 'llava_v1', 'q', -1)).toThrow(/numImages must be a non-negative integer, got -1/);
    expect(() => llavaPrompt(llama, 'llava_v1', 3 as never, 1)).toThrow(/question must be a string, got number/);
  });
});
