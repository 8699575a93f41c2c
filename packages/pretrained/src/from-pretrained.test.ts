/**
 * `fromPretrained` detection on small synthetic directories in each authors' layout (config keys,
 * tensor names in an index or in shard headers, a LAVIS YAML), the registry, and its errors. Loading
 * itself is each paper loader's own test; here the handlers are stand-ins that record their call.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import {
  detectCheetah, detectLlava, detectParrot, detectPretrainedKind, detectWings, fromPretrained, probeCheckpoint, registerPretrainedKind,
  registeredPretrainedKinds, unregisterPretrainedKind, type FromPretrainedOptions, type PretrainedKind, type PretrainedMLLM,
} from './index.js';

const root = mkdtempSync(join(tmpdir(), 'mllm-detect-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A directory `name` under the temp root with the given files (objects are written as JSON). */
function dir(name: string, files: Record<string, string | object | Uint8Array>): string {
  const path = join(root, name);
  mkdirSync(path, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    writeFileSync(join(path, file), typeof content === 'string' || content instanceof Uint8Array ? content : JSON.stringify(content));
  }
  return path;
}

/** A valid safetensors file with one F32 scalar-vector per name (8-byte LE header length, JSON header, data). */
function safetensors(names: string[]): Uint8Array {
  const header: Record<string, unknown> = {};
  names.forEach((name, i) => (header[name] = { dtype: 'F32', shape: [1], data_offsets: [4 * i, 4 * i + 4] }));
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + json.length + 4 * names.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  return out;
}

const LLAVA_CONFIG = {
  architectures: ['LlavaLlamaForCausalLM'],
  model_type: 'llava_llama',
  mm_vision_tower: 'openai/clip-vit-large-patch14-336',
  mm_projector_type: 'mlp2x_gelu',
  mm_hidden_size: 1024,
  mm_vision_select_layer: -2,
};
const PARROT_CONFIG = {
  ...LLAVA_CONFIG,
  architectures: ['ParrotQwen2ForCausalLM'],
  model_type: 'parrot_qwen2',
  moe_hidden_size: 1024,
  moe_intermediate_size: 256,
  moe_top_k: 1,
  moe_weight: 0.1,
  use_moe_residual: true,
};
// Wings' released config: LLaVA keys, nothing naming the learners (they are found in the weights).
const WINGS_CONFIG = { ...LLAVA_CONFIG, model_type: 'qwen2', mm_hidden_size: 1152 };
const CHEETAH_YAML = `model:
  arch: cheetah_vicuna
  model_type: pretrain_vicuna
  freeze_vit: true
  ckpt: 'path_to_cheetah_vicuna_7b'

preprocess:
  vis_processor:
    eval:
      name: "blip_image_eval"
      image_size: 224
`;

describe.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'detection reads files and makes no tensors; the cpu project covers it'))('fromPretrained', () => {
  const llava = dir('llava', { 'config.json': LLAVA_CONFIG, 'model.safetensors': safetensors(['model.mm_projector.0.weight', 'lm_head.weight']) });
  const parrot = dir('parrot', { 'config.json': PARROT_CONFIG });
  const parrotByKeys = dir('parrot-keys', { 'config.json': { ...PARROT_CONFIG, model_type: 'qwen2' } });
  const wingsIndex = dir('wings-index', {
    'config.json': WINGS_CONFIG,
    'model.safetensors.index.json': {
      metadata: { total_size: 8 },
      weight_map: { 'model.layers.0.self_attn.q_proj.weight': 'model-00001-of-00002.safetensors', 'model.layers.1.attn_pool.q_proj.weight': 'model-00002-of-00002.safetensors' },
    },
  });
  // No index (Wings' own loader globs the shards): the names come from the shard headers.
  const wingsShards = dir('wings-shards', {
    'config.json': WINGS_CONFIG,
    'model-00001-of-00002.safetensors': safetensors(['model.embed_tokens.weight']),
    'model-00002-of-00002.safetensors': safetensors(['model.layers.3.reweight_module.linear.weight', 'lm_head.weight']),
  });
  const cheetah = dir('cheetah', { 'cheetah_eval_vicuna.yaml': CHEETAH_YAML, 'notes.yml': 'model:\n  arch: blip2\n' });
  const plainLlama = dir('llama', { 'config.json': { model_type: 'llama', hidden_size: 64 }, 'model.safetensors': safetensors(['lm_head.weight']) });
  const notYaml = dir('blip2', { 'blip2.yaml': 'model:\n  arch: blip2_opt\n' });

  it('each rule recognises its own layout from config keys, tensor names or YAML, and only that', async () => {
    const probes = Object.fromEntries(
      await Promise.all(Object.entries({ llava, parrot, parrotByKeys, wingsIndex, wingsShards, cheetah, plainLlama }).map(async ([k, d]) => [k, await probeCheckpoint(d)] as const)),
    );
    expect(detectLlava(probes.llava)).toBe('config.json keys mm_projector_type, mm_vision_tower');
    expect(detectParrot(probes.parrot)).toBe('config.json model_type "parrot_qwen2"');
    expect(detectParrot(probes.parrotByKeys)).toBe('config.json keys moe_hidden_size, moe_intermediate_size, moe_top_k, …');
    expect(await detectWings(probes.wingsIndex)).toBe('weight model.layers.1.attn_pool.q_proj.weight');
    expect(await detectWings(probes.wingsShards)).toBe('weight model.layers.3.reweight_module.linear.weight');
    expect(detectCheetah(probes.cheetah)).toBe('cheetah_eval_vicuna.yaml with model arch cheetah_vicuna');
    // Negative cases: a rule must not claim another layout.
    expect([detectParrot(probes.llava), await detectWings(probes.llava), detectCheetah(probes.llava)]).toEqual([null, null, null]);
    expect([detectParrot(probes.wingsShards), detectCheetah(probes.parrot), await detectWings(probes.parrot)]).toEqual([null, null, null]);
    expect([detectLlava(probes.plainLlama), detectParrot(probes.plainLlama), await detectWings(probes.plainLlama), detectLlava(probes.cheetah)]).toEqual([null, null, null, null]);
    expect(detectCheetah(await probeCheckpoint(notYaml))).toBeNull();
  });

  it('detection order puts the paper layouts before plain LLaVA, whose mm_* keys they share', async () => {
    const kinds = await Promise.all([llava, parrot, parrotByKeys, wingsIndex, wingsShards, cheetah].map(async (d) => (await detectPretrainedKind(d))?.kind));
    expect(kinds).toEqual(['llava', 'parrot', 'parrot', 'wings', 'wings', 'cheetah']);
    expect(await detectPretrainedKind(plainLlama)).toBeNull();
  });

  it("recognises the authors' layouts of the project's own reference fixtures", async () => {
    const fixture = (path: string) => fileURLToPath(new URL(path, import.meta.url));
    const found = await Promise.all(
      [
        './cheetah/__fixtures__/tiny-vicuna', // LAVIS YAMLs + .pth files, no config.json
        '../../models/src/__fixtures__/reference/llava-qwen2-clip',
        '../../models/src/__fixtures__/reference/llava-llama-siglip-bf16', // sharded, with an index
      ].map(async (path) => (await detectPretrainedKind(fixture(path)))?.kind),
    );
    expect(found).toEqual(['cheetah', 'llava', 'llava']);
    // A vision tower directory is no checkpoint.
    expect(await detectPretrainedKind(fixture('../../models/src/__fixtures__/reference/tiny-clip-vit-12'))).toBeNull();
  });

  it('dispatches to the registered loader with the options; a recognised kind without a loader is a clear error', async () => {
    const calls: Array<[PretrainedKind, string, FromPretrainedOptions]> = [];
    const fake = (kind: PretrainedKind) => ({
      detect: () => null, // never matches: registered below to show that a handler's own rule replaces the built-in one
      load: async (d: string, options: FromPretrainedOptions): Promise<PretrainedMLLM> => {
        calls.push([kind, d, options]);
        return { kind, directory: d } as unknown as PretrainedMLLM;
      },
    });
    // The package entry registers the real loaders; this test swaps in stand-ins and puts them back.
    const initial = registeredPretrainedKinds();
    const removedWings = unregisterPretrainedKind('wings');
    const restoreParrot = registerPretrainedKind('parrot', { ...fake('parrot'), detect: detectParrot });
    const restoreLlava = registerPretrainedKind('llava', { ...fake('llava'), detect: detectLlava });
    try {
      expect(registeredPretrainedKinds()).toEqual(expect.arrayContaining(['parrot', 'llava']));
      expect(registeredPretrainedKinds()).not.toContain('wings');
      expect((await fromPretrained(parrot, { visionTowerDir: '/towers/clip' })).kind).toBe('parrot');
      expect((await fromPretrained(llava)).kind).toBe('llava');
      expect((await fromPretrained(parrot, { kind: 'llava' })).kind).toBe('llava'); // forced kind: no detection
      expect(calls).toEqual([
        ['parrot', parrot, { visionTowerDir: '/towers/clip' }],
        ['llava', llava, {}],
        ['llava', parrot, { kind: 'llava' }],
      ]);
      await expect(fromPretrained(wingsShards)).rejects.toThrow(
        /is a 'wings' checkpoint \(weight model\.layers\.3\.reweight_module\.linear\.weight\), but no 'wings' loader is registered \(registered: .*parrot, llava\)/,
      );
      // A handler's own rule replaces the built-in one: this one never matches, so Parrot's dir falls through to LLaVA.
      const restoreNever = registerPretrainedKind('parrot', fake('parrot'));
      expect((await fromPretrained(parrot)).kind).toBe('llava');
      restoreNever();
      expect((await fromPretrained(parrot)).kind).toBe('parrot');
    } finally {
      restoreLlava();
      restoreParrot();
      if (removedWings) registerPretrainedKind('wings', removedWings);
    }
    expect(registeredPretrainedKinds()).toEqual(initial);
    // unregister returns the handler it removed, then nothing.
    const before = unregisterPretrainedKind('cheetah');
    const handler = fake('cheetah');
    registerPretrainedKind('cheetah', handler);
    expect(unregisterPretrainedKind('cheetah')).toBe(handler);
    expect(unregisterPretrainedKind('cheetah')).toBeUndefined();
    if (before) registerPretrainedKind('cheetah', before);
  });

  it('a loader returning the wrong kind is an error, and its model is disposed', async () => {
    let disposed = 0;
    const restore = registerPretrainedKind('llava', {
      detect: detectLlava,
      load: async () => ({ kind: 'parrot', dispose: () => disposed++ }) as unknown as PretrainedMLLM,
    });
    try {
      await expect(fromPretrained(llava)).rejects.toThrow(/the 'llava' loader returned a 'parrot' model, expected kind 'llava'/);
      expect(disposed).toBe(1);
    } finally {
      restore();
    }
  });

  it('bad input: unknown layouts list what was looked for and what was found; bad paths, JSON and options name the problem', async () => {
    await expect(fromPretrained(plainLlama)).rejects.toThrow(
      /is not a checkpoint layout this package knows\. Looked for a LAVIS YAML config .*Cheetah.*; config\.json with model_type parrot_\* or moe_\* keys \(Parrot\); .*\(Wings\); .*\(plain LLaVA\)\. Found config\.json with model_type "llama" and no mm_\* keys\./,
    );
    await expect(fromPretrained(dir('empty', {}))).rejects.toThrow(/Found the directory is empty/);
    await expect(fromPretrained(notYaml)).rejects.toThrow(/Found no config\.json \(files: blip2\.yaml\)/);
    await expect(fromPretrained(join(root, 'missing'))).rejects.toThrow(/cannot read checkpoint directory .*missing": no such directory/);
    await expect(fromPretrained(join(llava, 'config.json'))).rejects.toThrow(/config\.json": not a directory/);
    await expect(fromPretrained(dir('bad-json', { 'config.json': '{"model_type": ' }))).rejects.toThrow(/bad-json\/config\.json" is not valid JSON/);
    await expect(fromPretrained(dir('array-json', { 'config.json': '[1]' }))).rejects.toThrow(/must hold a JSON object, got an array/);
    await expect(fromPretrained('')).rejects.toThrow(/dir must be a directory path, got ""/);
    await expect(fromPretrained(llava, { kind: 'blip2' as PretrainedKind })).rejects.toThrow(/options\.kind must be one of cheetah, parrot, wings, llava, got "blip2"/);
    expect(() => registerPretrainedKind('blip2' as PretrainedKind, { detect: detectLlava, load: async () => ({}) as PretrainedMLLM })).toThrow(/kind must be one of/);
    expect(() => registerPretrainedKind('llava', { detect: detectLlava } as never)).toThrow(/handler must have detect\(probe\) and load/);
  });
});
