/**
 * HF tokenizers on the two hand-written fixtures in packages/models/test-fixtures/tokenizers
 * (written by make-tokenizers.mjs there). Expected ids are derived on paper from the fixtures:
 *
 * qwen2-bpe (byte-level BPE, Qwen2's split regex): id of a byte = the byte's value, so `bytes(s)` below
 *   is the id list of text no merge applies to. Merges in rank order: 256 'he', 257 'll', 258 'hell',
 *   259 'hello', 260 'Ġw', 261 'or', 262 'Ġwor'; specials 263 <|endoftext|>, 264 <|im_start|>, 265 <|im_end|>.
 *   "hello" → h e l l o → he l l o → he ll o → hell o → hello = [259];
 *   " world" → Ġ w o r l d → Ġw o r l d → Ġw or l d → Ġwor l d = [262, 108, 100];
 *   " helpful" → Ġ he l p f u l = [32, 256, 108, 112, 102, 117, 108] (no 'he l' merge).
 * llama-bpe (SentencePiece-style: prepend '▁', ' '→'▁', BPE with byte fallback, <s> from the post-processor):
 *   0 <unk>, 1 <s>, 2 </s>, 3+b = <0xb>, 259 ▁, 260 h, 261 e, 262 l, 263 o, 264 w, 265 r, 266 d,
 *   merges 267 'he', 268 'll', 269 'hell', 270 'hello', 271 '▁hello', 272 'or', 273 '▁w', 274 '▁wor'.
 *   A character outside the vocabulary becomes its UTF-8 bytes' <0x..> ids: `fallback(s)` below.
 */
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import {
  CHEETAH_IMAGE, HFTokenizer, IGNORE_INDEX, IMAGE_TOKEN_INDEX, QWEN2_CHATML_SLOTS, cheetahPrompt, formatConversation, loadTokenizer, tokenizerImageToken,
} from '../index.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../test-fixtures/tokenizers/${name}`, import.meta.url));
const bytes = (s: string) => [...new TextEncoder().encode(s)];
const fallback = (s: string) => bytes(s).map((b) => 3 + b);
const I = IMAGE_TOKEN_INDEX;

// Tokenizers make no tensors: one backend project is enough.
describe.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'tokenizers make no tensors; the cpu project covers them'))('HFTokenizer', async () => {
  const qwen = await loadTokenizer(fixture('qwen2-bpe'));
  const llama = await loadTokenizer(fixture('llama-bpe'));

  it('reads special tokens, ids and the chat template from tokenizer_config.json', () => {
    expect([qwen.vocabSize, qwen.bosId, qwen.eosId, qwen.padId, qwen.imStartId, qwen.imEndId, qwen.imageId]).toEqual([266, -1, 265, 263, 264, 265, -200]);
    expect([llama.vocabSize, llama.bosId, llama.eosId, llama.padId, llama.imStartId, llama.addBosToken]).toEqual([275, 1, 2, 2, -1, true]);
    expect(qwen.chatTemplate).toContain('<|im_start|>');
    expect(llama.chatTemplate).toBeNull();
  });

  it('byte-level BPE ids match the hand-applied merges; decode round-trips', () => {
    expect(qwen.encode('hello world')).toEqual([259, 262, 108, 100]);
    expect(qwen.encode('hello hello')).toEqual([259, 32, 259]); // 'Ġ h' has no merge
    expect(qwen.encode('You are a helpful assistant.')).toEqual([...bytes('You are a'), 32, 256, 108, 112, 102, 117, 108, ...bytes(' assistant.')]);
    expect(qwen.encode('hello<|im_end|>\n')).toEqual([259, 265, 10]); // added tokens are matched before BPE
    for (const text of ['hello world\n', 'Qual é a cor? 图中的公共汽车 ıİ 👩‍🔬', '  two  spaces\n\n']) expect(qwen.decode(qwen.encode(text))).toBe(text);
    expect(qwen.decode([259, 265, I, 10])).toBe('hello<|im_end|><image>\n');
    expect(qwen.decode([259, 265, I, 10], { skipSpecialTokens: true })).toBe('hello\n');
  });

  it('SentencePiece-style BPE: ▁ prefix, byte fallback, <s> only with special tokens; decode round-trips', () => {
    expect(llama.encode('hello world')).toEqual([271, 274, 262, 266]);
    expect(llama.encodeText('hello world', { addSpecialTokens: true })).toEqual([1, 271, 274, 262, 266]);
    expect(llama.encode('hé')).toEqual([259, 260, ...fallback('é')]); // é = C3 A9 → <0xC3> <0xA9>
    expect(llama.encode('hello\n')).toEqual([271, ...fallback('\n')]);
    for (const text of ['hello world', 'Qual é a cor? 图中 ıİ', 'ok\nnew line']) expect(llama.decode(llama.encode(text))).toBe(text);
    expect(llama.decode([1, 271, 271], { skipSpecialTokens: true })).toBe('hello hello');
  });

  it('encode({allowImage}) splits at <image> and tokenizes each chunk alone', () => {
    // Without the split, ' world' would merge to Ġwor; after the placeholder it starts a new chunk.
    expect(qwen.encode('hello<image> world', { allowImage: true })).toEqual([259, I, 262, 108, 100]);
    expect(qwen.encode('hello<image>', {})).toEqual([259, ...bytes('<image>')]);
  });

  it('renders the Qwen2 chat_template with @huggingface/jinja (2 turns, default system, generation prompt)', () => {
    const messages = [
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'world' },
    ];
    expect(qwen.applyChatTemplate(messages)).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\nworld<|im_end|>\n',
    );
    expect(qwen.applyChatTemplate([{ role: 'system', content: 'Be brief.' }, messages[0]], { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(llama.applyChatTemplate(messages, { template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}' })).toBe(
      '<s>[user]hello[assistant]world',
    );
    expect(() => llama.applyChatTemplate(messages)).toThrow(/no chat_template/);
    expect(() => qwen.applyChatTemplate([{ role: 'user' } as never])).toThrow(/messages\[0\]/);
  });

  it("Parrot's / Wings' formatter: prompt, ids with IMAGE_TOKEN_INDEX, labels after the assistant slot", () => {
    const out = formatConversation(qwen, [
      { from: 'human', value: '<image>\nhello world' },
      { from: 'gpt', value: 'hello' },
    ]);
    expect(out.prompt).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nhello world<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>',
    );
    const system = [264, ...bytes('system\n'), ...qwen.encode('You are a helpful assistant.'), 265, 10];
    const user = [264, ...bytes('user\n'), I, 10, 259, 262, 108, 100, 265, 10];
    const gptSlot = [264, ...bytes('assistant\n')];
    expect(out.inputIds).toEqual([...system, ...user, ...gptSlot, 259, 265]);
    expect(out.labels).toEqual([...system, ...user, ...gptSlot].map(() => IGNORE_INDEX).concat([259, 265]));
    // generation preface '' (format_query): a bare assistant slot, no eot.
    const query = formatConversation(qwen, [{ from: 'human', value: 'hello' }], { generationPreface: '' });
    expect(query.prompt.endsWith('<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n')).toBe(true);
    expect(query.inputIds.slice(-11)).toEqual(gptSlot);
    // Wings' slots are configurable.
    const custom = formatConversation(qwen, [{ from: 'human', value: 'hello' }], { slots: { ...QWEN2_CHATML_SLOTS, eot: '<|endoftext|>', defaultSystemPrompt: '' } });
    expect(custom.prompt).toBe('<|im_start|>system\n<|endoftext|>\n<|im_start|>user\nhello<|endoftext|>');
    expect(() => formatConversation(qwen, [{ from: 'user', value: 'x' } as never])).toThrow(/conversations\[0\]/);
  });

  it("LLaVA's tokenizer_image_token keeps one leading <s> and drops each later chunk's", () => {
    // 'hello ' → ▁hello ▁ ; '\nhello' → ▁ <0x0A> hello ('▁ hello' needs the two adjacent).
    expect(tokenizerImageToken(llama, 'hello <image>\nhello')).toEqual([1, 271, 259, I, 259, 13, 270]);
    expect(tokenizerImageToken(qwen, 'hello<image> world')).toEqual([259, I, 262, 108, 100]); // no BOS in Qwen2
  });

  it("Cheetah's Vicuna prompt: image marker joined with a space, cut at <HereForImage>, BOS on the first segment only", () => {
    const { prompt, segments } = cheetahPrompt(llama, `${CHEETAH_IMAGE} hello world`, 1, 'vicuna');
    expect(prompt).toBe('###Human: <Img><HereForImage></Img>  hello world###Assistant:');
    expect(segments).toHaveLength(2);
    // '###Human: <Img>' → ▁ # # # H u m a n : ▁ < I m g > (only ▁ is in the vocabulary).
    expect(segments[0]).toEqual([1, 259, ...fallback('###Human:'), 259, ...fallback('<Img>')]);
    expect(segments[1][0]).toBe(259); // no BOS; the prepended ▁
    expect(llama.decode(segments[1])).toBe('</Img>  hello world###Assistant:');
  });

  it("Cheetah's LLaMA-2 prompt: [INST] with the empty <<SYS>> block, leading <s> stripped as Python's lstrip", () => {
    const { prompt, segments } = cheetahPrompt(llama, `hello ${CHEETAH_IMAGE}`, 1, 'llama2');
    expect(prompt).toBe('[INST] <<SYS>>\n\n<</SYS>>\n\nhello  <Img><HereForImage></Img> [/INST]');
    expect(segments.map((s) => llama.decode(s, { skipSpecialTokens: true }))).toEqual(['[INST] <<SYS>>\n\n<</SYS>>\n\nhello  <Img>', '</Img> [/INST]']);
    expect(segments[0][0]).toBe(1);
    expect(() => cheetahPrompt(llama, 'x', 1, 'vicuna2' as never)).toThrow(/style/);
  });

  it('loads from bytes (browser API) the same as from the directory; bad input names the argument', async () => {
    const dir = fixture('qwen2-bpe');
    const fromBytes = HFTokenizer.fromBytes(readFileSync(`${dir}/tokenizer.json`), readFileSync(`${dir}/tokenizer_config.json`));
    expect(fromBytes.encode('hello world\n')).toEqual(qwen.encode('hello world\n'));
    expect(() => HFTokenizer.fromObjects({ vocab: {} })).toThrow(/tokenizerJson must be/);
    expect(() => HFTokenizer.fromBytes('{')).toThrow(/tokenizerJson is not valid JSON/);
    await expect(loadTokenizer(fixture('missing'))).rejects.toThrow(/cannot read .*tokenizer\.json/);
    expect(qwen.toJSON()).toEqual({ type: 'hf' });
  });
});
