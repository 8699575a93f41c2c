/**
 * Cheetah's four weight files, read as the reference loads them, in its order (a later file overwrites what an
 * earlier one set, as the reference's successive non-strict `load_state_dict` calls do):
 *
 * 1. EVA ViT-g (`eva_vit_g.pth`, `create_eva_vit_g`): a bare F16 state dict (no prefix) → `visual_encoder.*`;
 *    blocks past the model's depth (the file has 40, the model builds 39) are skipped, as its non-strict load does.
 * 2. BLIP-2 (`blip2_pretrained_flant5xxl.pth`, `load_from_pretrained`): `{"model": …}`; the Q-Former's text side
 *    (`Qformer.cls.*`, word/position embeddings, `position_ids`, per-layer `intermediate.*` / `output.*`, which
 *    Cheetah deletes) and the stage-1 heads `vision_proj`, `text_proj`, `itm_head`, `temp` are skipped. Its
 *    `query_tokens` also become VPG-C's queries (`init_query_tokens_value`).
 * 3. The Vicuna / LLaMA-2 HF directory (`LlamaForCausalLM.from_pretrained`) → `llama_model.*`: `pytorch_model.bin`,
 *    its shards with `pytorch_model.bin.index.json`, or safetensors; the persistent per-layer
 *    `rotary_emb.inv_freq` buffers of HF 4.28-era LLaMA checkpoints are expected and skipped (recomputed).
 * 4. The Cheetah checkpoint (`ckpt`, `from_config`): `{"model": …}` applied last: VPG-C's tensors, buffers, and the
 *    Q-Former under its second name `llama_model.model.Qformer.*` (read as `Qformer.*`, after the first name, as
 *    PyTorch visits that module second).
 *
 * Unlike the reference's non-strict loads, a tensor none of these rules places is an error listing it (a wrong
 * file fails loudly), and so is a parameter no file provides (VPG-C's projections excepted when there is no
 * Cheetah checkpoint: the reference then keeps their zero initialisation). Nothing is assigned on failure.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  StateDictError,
  disposeTensorMap,
  loadShardedCheckpoint,
  loadStateDict,
  loadTorchCheckpointFile,
  nodeFilePromises,
} from '@mllm/core';
import { QFORMER_TEXT_SIDE_KEYS } from '@mllm/vpgc';
import type { CheetahModel } from './model.js';

/** Local paths of the four files. */
export interface CheetahWeightFiles {
  /** LAVIS' `eva_vit_g.pth`. */
  eva: string;
  /** BLIP-2's `blip2_pretrained_flant5xxl.pth` (the config's `q_former_model`). */
  blip2: string;
  /** The Vicuna / LLaMA-2 HF directory (the config's `llama_model`). */
  llama: string;
  /** The Cheetah checkpoint (the config's `ckpt`); absent: VPG-C keeps its zero projections. */
  cheetah?: string;
}

type Verdict = { load: string } | { skip: string } | 'unexpected';

/** BLIP-2 stage-1 heads that Cheetah does not build. */
const BLIP2_HEADS = /^(vision_proj\.|text_proj\.|itm_head\.|temp$)/;
const QFORMER_ALIAS = 'llama_model.model.Qformer.';
const INV_FREQ = /^model\.layers\.(\d+)\.self_attn\.rotary_emb\.inv_freq$/;
const VPGC_PROJECTIONS = ['qformer_proj.weight', 'qformer_proj.bias', 'llm_proj.weight', 'llm_proj.bias'].map((k) => `llama_model.model.${k}`);

/** The LLM directory's weight files: safetensors (`loadShardedCheckpoint`), or `pytorch_model.bin` / its shards. */
async function llamaWeightFiles(dir: string): Promise<{ safetensors: boolean; files: string[] }> {
  const owner = 'loadCheetah';
  const { fs, path } = await nodeFilePromises(owner);
  const exists = (name: string) => fs.stat(path.join(dir, name)).then((s) => s.isFile(), () => false);
  if ((await exists('model.safetensors')) || (await exists('model.safetensors.index.json'))) return { safetensors: true, files: [dir] };
  if (await exists('pytorch_model.bin.index.json')) {
    const indexPath = path.join(dir, 'pytorch_model.bin.index.json');
    let index: unknown;
    try {
      index = JSON.parse(await fs.readFile(indexPath, 'utf8'));
    } catch (error) {
      throw new Error(`${owner}: could not read ${JSON.stringify(indexPath)}: ${(error as Error).message}`, { cause: error });
    }
    const map = (index as { weight_map?: unknown }).weight_map;
    if (typeof map !== 'object' || map === null) throw new Error(`${owner}: ${JSON.stringify(indexPath)} has no weight_map`);
    const files = [...new Set(Object.values(map as Record<string, unknown>))];
    if (files.some((f) => typeof f !== 'string' || f.includes('/') || f.includes('\\'))) {
      throw new Error(`${owner}: ${JSON.stringify(indexPath)} weight_map must name files of the directory, got ${JSON.stringify(files)}`);
    }
    return { safetensors: false, files: (files as string[]).sort().map((f) => path.join(dir, f)) };
  }
  if (await exists('pytorch_model.bin')) return { safetensors: false, files: [path.join(dir, 'pytorch_model.bin')] };
  throw new Error(`${owner}: ${JSON.stringify(dir)} holds no LLaMA weights (model.safetensors[.index.json], pytorch_model.bin.index.json or pytorch_model.bin)`);
}

/**
 * Read the four files into `model` (names, rules and order in the file comment). Returns notes on what was
 * skipped. On any error nothing is assigned and no tensor is left behind.
 */
export async function loadCheetahWeights(model: CheetahModel, files: CheetahWeightFiles): Promise<string[]> {
  const params = new Set(model.namedParameters().map(([name]) => name));
  const depth = model.visualEncoder.blocks.length;
  const tied = model.llamaModel.hfConfig.tieWordEmbeddings;
  const staged = new Map<string, tf.Tensor>();
  const unexpected: string[] = [];
  const notes: string[] = [];
  const stage = (name: string, tensor: tf.Tensor) => {
    staged.get(name)?.dispose();
    staged.set(name, tensor);
  };

  /** Read one file's tensors through `verdict`, staging the loaded ones under their model names. */
  const read = async (label: string, load: (filter: (name: string) => boolean) => Promise<Map<string, tf.Tensor>>, verdict: (name: string) => Verdict, order?: (a: string, b: string) => number) => {
    const targets = new Map<string, string>();
    const skipped = new Map<string, number>();
    const tensors = await load((name) => {
      const v = verdict(name);
      if (v === 'unexpected') unexpected.push(`${name} (${label})`);
      else if ('skip' in v) skipped.set(v.skip, (skipped.get(v.skip) ?? 0) + 1);
      else targets.set(name, v.load);
      return v !== 'unexpected' && 'load' in v;
    });
    const names = [...tensors.keys()];
    if (order) names.sort(order);
    for (const name of names) stage(targets.get(name)!, tensors.get(name)!);
    for (const [why, count] of skipped) notes.push(`${label}: skipped ${count} tensor${count === 1 ? '' : 's'}: ${why}`);
  };

  try {
    await read('EVA ViT', (filter) => loadTorchCheckpointFile(files.eva, { filter }), (name) => {
      const block = /^blocks\.(\d+)\./.exec(name); // LAVIS' file is bare: no visual_encoder. prefix
      if (block && Number(block[1]) >= depth) return { skip: `blocks ${depth}+ (the model builds ${depth} blocks; the reference loads non-strictly)` };
      return params.has(`visual_encoder.${name}`) ? { load: `visual_encoder.${name}` } : 'unexpected';
    });
    await read('BLIP-2', (filter) => loadTorchCheckpointFile(files.blip2, { select: 'model', filter }), (name) => {
      if (QFORMER_TEXT_SIDE_KEYS.some((p) => p.test(name))) return { skip: "the Q-Former's text side (deleted by Cheetah)" };
      if (BLIP2_HEADS.test(name)) return { skip: 'BLIP-2 stage-1 heads vision_proj / text_proj / itm_head / temp (not part of Cheetah)' };
      return params.has(name) ? { load: name } : 'unexpected';
    });
    // init_query_tokens_value: VPG-C's queries start as BLIP-2's
    const blip2Queries = staged.get('query_tokens');
    if (blip2Queries) stage('llama_model.model.query_tokens', blip2Queries.clone());
    const llama = await llamaWeightFiles(files.llama);
    for (const file of llama.files) {
      const verdict = (name: string): Verdict => {
        const rotary = INV_FREQ.exec(name);
        if (rotary && Number(rotary[1]) < model.llamaModel.layers.length) return { skip: 'persistent rotary_emb.inv_freq buffers (recomputed from rope_theta)' };
        if (name === 'lm_head.weight' && tied) return { skip: 'lm_head.weight (tie_word_embeddings)' };
        return params.has(`llama_model.${name}`) ? { load: `llama_model.${name}` } : 'unexpected';
      };
      await read(`LLaMA ${file}`, (filter) => (llama.safetensors ? loadShardedCheckpoint(file, { filter }).then((r) => r.tensors) : loadTorchCheckpointFile(file, { filter })), verdict);
    }
    if (files.cheetah !== undefined) {
      await read('Cheetah checkpoint', (filter) => loadTorchCheckpointFile(files.cheetah!, { select: 'model', filter }), (name) => {
        const canonical = name.startsWith(QFORMER_ALIAS) ? `Qformer.${name.slice(QFORMER_ALIAS.length)}` : name;
        if (QFORMER_TEXT_SIDE_KEYS.some((p) => p.test(canonical))) return { skip: "the Q-Former's text side and its position_ids buffer" };
        const rotary = /^llama_model\.(model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq)$/.exec(name);
        if (rotary && INV_FREQ.test(rotary[1]!)) return { skip: 'persistent rotary_emb.inv_freq buffers (recomputed from rope_theta)' };
        return params.has(canonical) ? { load: canonical } : 'unexpected';
      }, (a, b) => Number(a.startsWith(QFORMER_ALIAS)) - Number(b.startsWith(QFORMER_ALIAS))); // the alias after the first name
    }
    const missing = [...params].filter((name) => !staged.has(name) && !(files.cheetah === undefined && VPGC_PROJECTIONS.includes(name)));
    if (missing.length || unexpected.length) {
      throw new StateDictError('Cheetah (eva, blip2, llama, cheetah files)', missing, unexpected, []);
    }
    loadStateDict(model, staged, { strict: false });
  } finally {
    disposeTensorMap(staged);
  }
  if (files.cheetah === undefined) notes.push('no Cheetah checkpoint: VPG-C keeps its zero-initialised projections (BLIP-2 + LLM behaviour)');
  return notes;
}
