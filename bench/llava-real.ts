/**
 * Real-size LLaVA memory and speed: a Qwen2-0.5B-shaped LLaVA model (random weights) with a CLIP ViT-B/16 tower
 * and an `mlp2x_gelu` projector, saved as BF16 sharded safetensors, loaded in a fresh Node process per backend
 * (peak memory against its float32 weights), then a prompt with one image (196 image tokens + 32 text tokens)
 * prefilled and greedy-decoded with the KV cache; PyTorch runs the same model from the same files on the same
 * CPU in the same run (bench/reference/llava_real.py, 2 threads, float32) and the table shows both.
 *
 *   npx tsx --tsconfig bench/tsconfig.json bench/llava-real.ts [--size full|small] [--backends wasm,cpu]
 *       [--decode 16] [--cpu-decode 2] [--bunny /path/to/Bunny] [--no-torch] [--dir /tmp/llava-real] [--keep]
 *
 * (`pnpm bench --llava-real` runs it with the defaults after the module table.)
 *
 * - `--size full` (default): Qwen2-0.5B (hidden 896, 24 layers, 14 heads / 2 KV heads, intermediate 4864, vocab
 *   151936, tied embeddings, rope θ 1e6) and CLIP ViT-B/16 at 224 px (hidden 768, 12 layers, 12 heads, 197
 *   tokens), 2.3 GB of float32 weights, 1.2 GB of BF16 files in the temporary directory. `--size small` is the
 *   same code path at toy widths (for developing the bench; seconds).
 * - The checkpoint is laid out as LLaVA-1.5 ships: `llava/` (`config.json` with `model_type` `llava_qwen2` and
 *   the `mm_*` keys; the language model and `model.mm_projector.{0,2}.*` in BF16 shards with
 *   `model.safetensors.index.json`) and the tower directory `clip-vit-base-patch16/` (HF CLIP `config.json`,
 *   `vision_model.*` in BF16) that `mm_vision_tower` names.
 * - Each backend is measured in a fresh process: `loadLlavaModel(<dir>/llava)` (the tower directory found beside it
 *   by `mm_vision_tower`'s last component), then peak RSS above the process's RSS after the backend started
 *   (`process.resourceUsage().maxRSS`), after loading and at the end; on wasm also the heap size (it never
 *   shrinks, so it is the backend's peak). Prefill: `LlavaModel.forward` with the cache — tower (layers up to
 *   `mm_vision_select_layer` −2) → projector → spliced at `IMAGE_TOKEN_INDEX` → the 228-token sequence through the
 *   decoder, the head on the last row only (`lastLogitsOnly`; PyTorch likewise, as HF's `num_logits_to_keep`), to
 *   the first token; timed cold
 *   (the first call: on wasm XNNPACK packs every weight then) and again warm (not on cpu: minutes). Decode:
 *   `--decode` greedy steps (`--cpu-decode` on cpu) with the KV cache, argmax read back each step.
 * - PyTorch (Debian python3-torch, `/usr/bin/python3`): HF's Qwen2 layers as Bunny vendors them (imported from
 *   the Bunny clone given by `--bunny` or `MLLM_BUNNY_DIR`; skipped with a line saying so when absent) and the
 *   CLIP re-statement `clip_reference` of scripts/reference-fixtures/vision_towers.py in float32 (all 12 layers,
 *   as HF's tower computes every hidden state before LLaVA selects −2).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  initBackend, parseBackendRequest, saveShardedCheckpoint, setSeed, stateDict, disposeStateDict, MlpGeluProjector, Module,
  SAFETENSORS_INDEX_NAME,
} from '@mllm/core';
import { CLIPVisionModel, HFCausalLM, IMAGE_TOKEN_INDEX, disposeLlavaCache, loadLlavaModel, type LlavaKVCache } from '@mllm/models';

const MB = 1024 * 1024;
const PYTHON = '/usr/bin/python3';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOWER_NAME = 'clip-vit-base-patch16';
const TEXT_BEFORE = 16;
const TEXT_AFTER = 16;
const SHARD_BYTES = 400 * MB; // BF16: the decoder's 0.99 GB in 3 shards

function argument(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The two model shapes: Qwen2-0.5B + CLIP ViT-B/16, and a toy one on the same code path. */
function configs(size: string): { llm: Record<string, unknown>; tower: Record<string, unknown> } {
  if (size !== 'full' && size !== 'small') throw new Error(`--size must be full or small, got '${size}'`);
  const full = size === 'full';
  const tower = {
    model_type: 'clip_vision_model', architectures: ['CLIPVisionModel'], hidden_size: full ? 768 : 64, intermediate_size: full ? 3072 : 128,
    num_hidden_layers: full ? 12 : 2, num_attention_heads: full ? 12 : 4, image_size: 224, patch_size: 16, num_channels: 3,
    layer_norm_eps: 1e-5, hidden_act: 'quick_gelu', projection_dim: 512, torch_dtype: 'bfloat16',
  };
  const llm = {
    architectures: ['LlavaQwen2ForCausalLM'], model_type: 'llava_qwen2', hidden_size: full ? 896 : 64, intermediate_size: full ? 4864 : 128,
    num_hidden_layers: full ? 24 : 2, num_attention_heads: full ? 14 : 4, num_key_value_heads: 2, vocab_size: full ? 151936 : 1000,
    max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000.0, tie_word_embeddings: true, hidden_act: 'silu',
    attention_dropout: 0.0, use_sliding_window: false, sliding_window: 32768, bos_token_id: 151643, eos_token_id: 151645,
    torch_dtype: 'bfloat16', use_cache: true,
    mm_vision_tower: `openai/${TOWER_NAME}`, mm_hidden_size: tower.hidden_size, mm_projector_type: 'mlp2x_gelu',
    mm_vision_select_layer: -2, mm_vision_select_feature: 'patch', mm_use_im_start_end: false, mm_use_im_patch_token: false,
    image_aspect_ratio: 'pad', tokenizer_padding_side: 'right',
  };
  return { llm, tower };
}

/** The projector under its checkpoint names `model.mm_projector.{0,2}.*`. */
class NamedProjector extends Module {
  static readonly className = 'NamedProjector';
  readonly projector: MlpGeluProjector;
  constructor(inFeatures: number, outFeatures: number) {
    super();
    this.projector = this.addModule('model.mm_projector', new MlpGeluProjector({ inFeatures, outFeatures }));
    this.built = true;
  }
}

/** Writer process: random weights (seeded), BF16 shards; prompt ids and pixels for both engines. */
async function write(dir: string, size: string): Promise<void> {
  await initBackend('cpu', { fastCpuKernels: true });
  const { llm, tower } = configs(size);
  const llavaDir = path.join(dir, 'llava');
  const towerDir = path.join(dir, TOWER_NAME);
  setSeed(11);
  const clip = new CLIPVisionModel({ config: tower });
  let tensors = stateDict(clip);
  clip.dispose();
  await saveShardedCheckpoint(towerDir, tensors, { maxShardBytes: SHARD_BYTES, floatDtype: 'BF16' });
  disposeStateDict(tensors);
  writeFileSync(path.join(towerDir, 'config.json'), `${JSON.stringify(tower, null, 2)}\n`);

  // The decoder's state dict holds a transposed copy of every Linear: built and saved, then freed, before the projector's.
  const lm = new HFCausalLM({ config: { ...llm, model_type: 'qwen2' } });
  tensors = stateDict(lm);
  lm.dispose();
  const projector = new NamedProjector(tower.hidden_size as number, llm.hidden_size as number);
  for (const [name, t] of stateDict(projector)) tensors.set(name, t);
  projector.dispose();
  const saved = await saveShardedCheckpoint(llavaDir, tensors, { maxShardBytes: SHARD_BYTES, floatDtype: 'BF16' });
  disposeStateDict(tensors);
  writeFileSync(path.join(llavaDir, 'config.json'), `${JSON.stringify(llm, null, 2)}\n`);

  // Prompt: text ids around one <image> (-200); pixels [1, 224, 224, 3] normalised, channels last, as raw float32.
  let state = 12345;
  const next = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  const vocab = llm.vocab_size as number;
  const ids = (n: number) => Array.from({ length: n }, () => 100 + Math.floor(next() * Math.min(vocab - 100, 150000)));
  writeFileSync(path.join(dir, 'prompt.json'), JSON.stringify({ before: ids(TEXT_BEFORE), after: ids(TEXT_AFTER) }));
  const pixels = new Float32Array(224 * 224 * 3).map(() => next() * 4 - 2);
  writeFileSync(path.join(dir, 'pixels.f32'), Buffer.from(pixels.buffer));
  console.log(JSON.stringify({ shards: saved.shardFiles.length, llavaBytes: saved.totalSize }));
}

/** Greedy token of the last row of `logits [1, L, V]`. */
function lastArgmax(logits: tf.Tensor3D): number {
  const [, L, V] = logits.shape;
  const id = tf.tidy(() => tf.argMax(tf.reshape(tf.slice(logits, [0, L - 1, 0], [1, 1, V]), [V])));
  const value = id.dataSync()[0]!;
  id.dispose();
  return value;
}

/** Measuring process: load, prefill (cold, then warm), decode; one JSON line. */
async function measure(dir: string, backend: string, decode: number): Promise<void> {
  await initBackend(parseBackendRequest(backend), { fastCpuKernels: true });
  const heap = () => (backend === 'wasm' ? (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length : 0);
  const rss = () => process.resourceUsage().maxRSS * 1024;
  const baselineRss = process.memoryUsage().rss;
  let t = performance.now();
  const progress = (what: string) => console.error(`    ${backend}: ${what} (${((performance.now() - t) / 1e3).toFixed(1)} s, rss ${(process.memoryUsage().rss / MB).toFixed(0)} MiB${heap() ? `, heap ${(heap() / MB).toFixed(0)} MiB` : ''})`);
  const model = await loadLlavaModel(path.join(dir, 'llava')); // the tower directory: the sibling named by mm_vision_tower
  const loadMs = performance.now() - t;
  progress('loaded');
  const afterLoad = { peakRss: rss(), tfBytes: tf.memory().numBytes, heap: heap() };
  const weightBytes = model.parameterCount() * 4;
  const prompt = JSON.parse(readFileSync(path.join(dir, 'prompt.json'), 'utf8')) as { before: number[]; after: number[] };
  const inputIds = [[...prompt.before, IMAGE_TOKEN_INDEX, ...prompt.after]];
  const raw = readFileSync(path.join(dir, 'pixels.f32'));
  const pixels = tf.tidy(() => tf.transpose(tf.tensor4d(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), [1, 224, 224, 3]), [0, 3, 1, 2])) as tf.Tensor4D; // HF pixel_values [1, 3, S, S]

  const prefill = (): { ms: number; cache: LlavaKVCache; token: number; tokens: number } => {
    const started = performance.now();
    // tower (layer −2, patch) → projector → spliced at IMAGE_TOKEN_INDEX → decoder with the cache; the head on the last row only
    const out = model.forward({ inputIds, pixelValues: pixels, useCache: true, lastLogitsOnly: true });
    const token = lastArgmax(out.logits);
    out.logits.dispose();
    return { ms: performance.now() - started, cache: out.cache!, token, tokens: out.lengths[0]! };
  };
  t = performance.now();
  const cold = prefill();
  progress('first prefill');
  let warm = cold;
  if (backend !== 'cpu') {
    disposeLlavaCache(cold.cache);
    t = performance.now();
    warm = prefill();
    progress('prefill');
  }
  const tokens = [warm.token];
  let cache = warm.cache;
  t = performance.now();
  for (let step = 0; step < decode; step++) {
    const out = model.forward({ inputIds: [[tokens.at(-1)!]], cache, useCache: true });
    disposeLlavaCache(cache);
    cache = out.cache!;
    tokens.push(lastArgmax(out.logits));
    out.logits.dispose();
    if (step === 0 || step === decode - 1) progress(`decode step ${step + 1}`);
  }
  const decodeMs = performance.now() - t;
  disposeLlavaCache(cache);
  pixels.dispose();
  const end = { peakRss: rss(), heap: heap() };
  model.dispose();
  console.log(JSON.stringify({
    backend, weightBytes, loadMs, baselineRss, afterLoad, end, promptTokens: cold.tokens,
    prefillColdMs: cold.ms, prefillMs: warm.ms, decodeSteps: decode, decodeMs, tokens,
  }));
}

function child(args: string[], env: Record<string, string> = {}): string {
  const started = performance.now();
  const result = spawnSync('npx', ['tsx', '--tsconfig', 'bench/tsconfig.json', fileURLToPath(import.meta.url), ...args], {
    cwd: root, encoding: 'utf8', maxBuffer: 16 * MB, stdio: ['ignore', 'pipe', 'inherit'], // progress lines straight to stderr
    env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=8192', ...env },
  });
  if (result.status !== 0) throw new Error(`llava-real ${args.join(' ')} failed (${result.status}${result.signal ? `, ${result.signal}` : ''}; its output is above)`);
  console.error(`  ran llava-real ${args.join(' ')} (${((performance.now() - started) / 1e3).toFixed(0)} s)`);
  return result.stdout.trim().split('\n').pop()!;
}

interface Measured {
  backend: string; weightBytes: number; loadMs: number; baselineRss: number; promptTokens: number;
  afterLoad: { peakRss: number; tfBytes: number; heap: number }; end: { peakRss: number; heap: number };
  prefillColdMs: number; prefillMs: number; decodeSteps: number; decodeMs: number; tokens: number[];
}
interface TorchMeasured { load_s: number; prompt_tokens: number; prefill_cold_ms: number; prefill_ms: number; decode_steps: number; decode_ms: number; tokens: number[]; threads: number; torch: string; blas: string }

async function main(): Promise<void> {
  const mode = argument('mode');
  const size = argument('size') ?? 'full';
  if (mode === 'write') return write(argument('dir')!, size);
  if (mode === 'measure') return measure(argument('dir')!, argument('backend') ?? 'wasm', Number(argument('decode') ?? 16));

  const backends = (argument('backends') ?? 'wasm,cpu').split(',').map((s) => s.trim()).filter(Boolean);
  for (const b of backends) if (!['cpu', 'wasm', 'webgpu'].includes(b)) throw new Error(`--backends: unknown backend '${b}' (cpu, wasm, webgpu)`);
  const decode = Number(argument('decode') ?? 16);
  const cpuDecode = Number(argument('cpu-decode') ?? 2);
  for (const [name, value] of [['decode', decode], ['cpu-decode', cpuDecode]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, got ${argument(name)}`);
  }
  configs(size); // validates --size
  const bunny = argument('bunny') ?? process.env.MLLM_BUNNY_DIR;
  const withTorch = !process.argv.includes('--no-torch');
  const given = argument('dir');
  const dir = given ?? mkdtempSync(path.join(os.tmpdir(), 'llava-real-'));
  if (given) mkdirSync(dir, { recursive: true });
  const notes: string[] = [];
  try {
    const written = existsSync(path.join(dir, 'llava', SAFETENSORS_INDEX_NAME)) && given
      ? null
      : JSON.parse(child(['--mode', 'write', '--dir', dir, '--size', size])) as { shards: number; llavaBytes: number };
    if (!written) notes.push(`reused the checkpoint already in ${dir}`);
    const results: Measured[] = [];
    for (const backend of backends) {
      try {
        results.push(JSON.parse(child(['--mode', 'measure', '--dir', dir, '--backend', backend, '--decode', String(backend === 'cpu' ? cpuDecode : decode)])) as Measured);
      } catch (error) {
        notes.push(`${backend}: ${(error as Error).message.split('\n').slice(0, 4).join(' ')}`);
      }
    }
    let torch: TorchMeasured | null = null;
    if (!withTorch) notes.push('PyTorch: not run (--no-torch)');
    else if (!bunny || !existsSync(path.join(bunny, 'bunny', 'model', 'language_model', 'qwen2', 'modeling_qwen2.py'))) {
      notes.push(`PyTorch: not run — it needs a clone of BAAI-DCAI/Bunny (HF's Qwen2 as Bunny vendors it): pass --bunny /path/to/Bunny or set MLLM_BUNNY_DIR${bunny ? ` (${bunny} has no bunny/model/language_model/qwen2/modeling_qwen2.py)` : ''}`);
    } else {
      try {
        const started = performance.now();
        const out = execFileSync(PYTHON, [path.join(root, 'bench/reference/llava_real.py'), dir, bunny, String(decode)], { encoding: 'utf8', maxBuffer: 16 * MB });
        torch = JSON.parse(out.trim().split('\n').pop()!) as TorchMeasured;
        console.error(`  ran PyTorch llava_real.py (${((performance.now() - started) / 1e3).toFixed(0)} s)`);
      } catch (error) {
        notes.push(`PyTorch: ${(error as Error).message.split('\n').slice(0, 4).join(' ')}`);
      }
    }
    report(size, results, torch, notes);
  } finally {
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

function report(size: string, results: Measured[], torch: TorchMeasured | null, notes: string[]): void {
  const f = (x: number | undefined, digits = 1) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
  const weights = results[0]?.weightBytes;
  console.log(`LLaVA (${size === 'full' ? 'Qwen2-0.5B + CLIP ViT-B/16 224 px, mlp2x_gelu' : 'toy widths'}, random BF16 weights): ${weights ? `${(weights / MB).toFixed(0)} MiB of float32 weights` : ''}, prompt ${results[0]?.promptTokens ?? torch?.prompt_tokens} tokens (196 image + ${TEXT_BEFORE + TEXT_AFTER} text)`);
  console.log('| engine | load s | peak RSS after load / f32 weights | peak RSS at end / f32 weights | wasm heap MiB (end) | first prefill s | prefill s | prefill tok/s | decode tok/s | @mllm / PyTorch decode time | greedy tokens = PyTorch |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  const torchDecode = torch ? torch.decode_steps / (torch.decode_ms / 1e3) : undefined;
  for (const r of results) {
    const decodeRate = r.decodeSteps / (r.decodeMs / 1e3);
    const same = torch ? r.tokens.slice(0, torch.tokens.length).every((t, i) => t === torch!.tokens[i]) : undefined;
    console.log(`| @mllm ${r.backend} | ${f(r.loadMs / 1e3)} | ${f((r.afterLoad.peakRss - r.baselineRss) / r.weightBytes, 2)} | ${f((r.end.peakRss - r.baselineRss) / r.weightBytes, 2)} | ${r.end.heap ? f(r.end.heap / MB, 0) : '–'} | ${f(r.prefillColdMs / 1e3)} | ${r.backend === 'cpu' ? '–' : f(r.prefillMs / 1e3, 2)} | ${f(r.promptTokens / (r.prefillMs / 1e3), 1)} | ${f(decodeRate, 2)} | ${torchDecode ? f(torchDecode / decodeRate, 2) : '–'} | ${same === undefined ? '–' : same ? `yes (${Math.min(r.tokens.length, torch!.tokens.length)})` : `no: ${r.tokens.join(' ')} vs ${torch!.tokens.join(' ')}`} |`);
  }
  if (torch) {
    console.log(`| PyTorch ${torch.torch} (${torch.threads} threads, float32, BLAS ${torch.blas}) | ${f(torch.load_s)} | – | – | – | ${f(torch.prefill_cold_ms / 1e3)} | ${f(torch.prefill_ms / 1e3, 2)} | ${f(torch.prompt_tokens / (torch.prefill_ms / 1e3), 1)} | ${f(torchDecode, 2)} | 1 | – |`);
  }
  if (notes.length) console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
