/**
 * HF LLaMA / Qwen2 decoder-only causal LM from a `config.json` (`resolveHFDecoderConfig`), with HF's
 * state-dict names: `model.embed_tokens.weight`, `model.layers.{i}.self_attn.{q,k,v,o}_proj.{weight,bias}`,
 * `model.layers.{i}.mlp.{gate,up,down}_proj.weight`, `model.layers.{i}.{input,post_attention}_layernorm.weight`,
 * `model.norm.weight`, `lm_head.weight` (absent with `tie_word_embeddings`: logits = h·Eᵀ).
 *
 *   h_0 = embed(inputIds) | inputsEmbeds                          [B, L, H]
 *   h_{ℓ+1} = layer_ℓ(h_ℓ)  (pre-norm, GQA + rotary, SwiGLU; hooks) [B, L, H]
 *   logits = lm_head(norm(h_N))                                    [B, L, V]
 *
 * Padding: `attentionMask [B, L]` (1 = real) may pad on the left or the right (or inside a sequence);
 * padded keys are never attended. Positions default to HF generate's `cumsum(mask) − 1` (padding slots
 * get 1, as HF); explicit `positionIds` replace them (e.g. counting through padding inside a sequence).
 * Rows of padding queries see no key: their attention output is 0 (HF: a uniform row), so their logits
 * are not HF's and are meaningless either way.
 *
 * Hooks: the project's `DecoderHooks` run at the same points as in the host decoder (`prepare`,
 * `beforeLayer`, `afterAttention` with `[B, h, Lq, Lk]` probabilities, `namedModules`/`modules`), so the
 * module packages attach here as to the host (`ModuleHost`).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, Linear, RMSNorm, SwiGLU, matMul2dTransposeB, assertOptionsObject, assertTensor, describeValue, type BaseModelShape, imageTablesFromSpans, type AfterAttentionArgs, type DecoderHooks, type ForwardContext, type HookHandle } from '@mllm/core';
import { Embedding } from '../model/embedding.js';
import { assertSameShape, type LayerCache } from '../model/decoder-layer.js';
import { AttachedHooks } from '../model/attached-hooks.js';
import { GroupedQueryAttention } from './attention.js';
import { resolveHFDecoderConfig, type HFDecoderConfigJson, type ResolvedHFDecoderConfig } from './config.js';
import { hfRotaryTables } from './rope.js';

/** Integer rows `[B][L]` or a rank-2 tensor. */
export type HFIntRows = number[][] | tf.Tensor2D;

/**
 * KV cache of an `HFCausalLM` (from `forward({ useCache: true })`): per layer the rotated keys and
 * the values `[B, kv, Lpast, d]`, the key padding mask and the next default position per sample.
 * The caller owns the tensors: `disposeHFCache` (a forward given a cache leaves it untouched).
 */
export interface HFKVCache {
  layers: LayerCache[];
  /** `[B][Lpast]` 1 = real key. */
  keyMask: number[][];
  /** `[B]` position of each sample's next token by default (its last real position + 1). */
  nextPositions: number[];
}

/** Dispose a cache's tensors. */
export function disposeHFCache(cache: HFKVCache | null | undefined): void {
  for (const layer of cache?.layers ?? []) {
    layer.keys.dispose();
    layer.values.dispose();
  }
}

export interface HFForwardOptions {
  /** `[B, L]` token ids (exactly one of `inputIds` / `inputsEmbeds`). */
  inputIds?: HFIntRows;
  /** `[B, L, H]` layer-0 inputs (the references call their decoders this way, with image tokens spliced in). */
  inputsEmbeds?: tf.Tensor3D;
  /** `[B, L]` 1 = real token, 0 = padding (left, right or inside); default all ones. */
  attentionMask?: HFIntRows;
  /** `[B, L]` explicit rotary positions; default `cumsum(mask) − 1` continuing the cache's count. */
  positionIds?: HFIntRows;
  /** Earlier positions' keys/values (from a previous `useCache` forward). */
  cache?: HFKVCache | null;
  /** Return the updated cache (past + this call). */
  useCache?: boolean;
  /**
   * Fields of the hooks' `ForwardContext` to use instead of the text-only defaults (an MLLM passes its
   * image spans, features and masks here). The per-position defaults cover this call's tokens.
   */
  context?: Partial<ForwardContext>;
}

export interface HFForwardResult {
  /** `[B, L, V]` */
  logits: tf.Tensor3D;
  cache: HFKVCache | null;
}

export interface HFGenerateOptions {
  /** `[B, L]` 1 = real token (left or right padding); default all ones. */
  attentionMask?: HFIntRows;
  /** Number of tokens to generate per sample (≥ 1). */
  maxNewTokens: number;
  /** End of sequence: a sample stops after generating one of these. */
  eosTokenId?: number | number[];
  /** Token appended to samples that have stopped (default the first eos id, else 0). */
  padTokenId?: number;
}

export interface HFDecoderLayerArgs extends ModuleArgs {
  config: ResolvedHFDecoderConfig;
}

export interface HFDecoderLayerInputs {
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  /** `[B, 1, g·Lq, Lk]` */
  mask: tf.Tensor4D;
  past?: LayerCache | null;
  returnProbs?: boolean;
  afterAttention?: (args: AfterAttentionArgs) => tf.Tensor3D | null;
}

/** Pre-norm decoder layer: `h = x + attn(norm1(x))` (→ afterAttention), `y = h + mlp(norm2(h))`. */
export class HFDecoderLayer extends Module {
  static readonly className = 'HFDecoderLayer';
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: GroupedQueryAttention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: SwiGLU;

  constructor(args: HFDecoderLayerArgs) {
    super(args);
    const c = args.config;
    this.inputLayernorm = this.addModule('input_layernorm', new RMSNorm({ dim: c.hiddenSize, eps: c.rmsEps }));
    this.selfAttn = this.addModule('self_attn', new GroupedQueryAttention({
      hiddenSize: c.hiddenSize, numHeads: c.numHeads, numKeyValueHeads: c.numKeyValueHeads, headDim: c.headDim,
      qkvBias: c.qkvBias, outputBias: c.outputBias,
    }));
    this.postAttentionLayernorm = this.addModule('post_attention_layernorm', new RMSNorm({ dim: c.hiddenSize, eps: c.rmsEps }));
    this.mlp = this.addModule('mlp', new SwiGLU({ hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize }));
    this.built = true;
  }

  /** `hidden [B, Lq, H] → { hidden [B, Lq, H], present }`. */
  forward(hidden: tf.Tensor3D, inputs: HFDecoderLayerInputs): { hidden: tf.Tensor3D; present: LayerCache } {
    this.assertUsable();
    const out = tf.tidy(() => {
      const attentionInput = this.inputLayernorm.forward(hidden) as tf.Tensor3D; // [B, Lq, H]
      const attention = this.selfAttn.forward({
        hidden: attentionInput, cos: inputs.cos, sin: inputs.sin, mask: inputs.mask,
        past: inputs.past ?? null, returnProbs: inputs.returnProbs ?? false,
      });
      let h = tf.add(hidden, attention.output) as tf.Tensor3D; // [B, Lq, H]
      const replaced = inputs.afterAttention?.({ residual: h, attentionInput, attentionProbs: attention.probs, layerInput: hidden });
      if (replaced) {
        assertSameShape('afterAttention', replaced, h);
        h = replaced;
      }
      const y = tf.add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h))) as tf.Tensor3D; // [B, Lq, H]
      return { hidden: y, keys: attention.present.keys, values: attention.present.values };
    });
    return { hidden: out.hidden as tf.Tensor3D, present: { keys: out.keys as tf.Tensor4D, values: out.values as tf.Tensor4D } };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    throw new Error(`HFDecoderLayer.call: use forward(hidden, { cos, sin, mask }) (got ${Array.isArray(inputs) ? 'a list' : 'a tensor'})`);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }
}
tf.serialization.registerClass(HFDecoderLayer, 'mllm');

export interface HFCausalLMArgs extends ModuleArgs {
  /** The parsed `config.json` (snake_case). */
  config: HFDecoderConfigJson | Record<string, unknown>;
}

/**
 * `[B, 1, g·Lq, Lk]` bool attention mask of `Lq` new queries after `Lpast` cached keys: query `t` (absolute
 * index `Lpast + t`) sees key `j` iff `j ≤ Lpast + t` and `keyMask[b][j] ≠ 0`, rows repeated for the g query
 * heads of a KV group (the grouped layout of `GroupedQueryAttention`). Built in JavaScript: the masks are
 * host arrays already, and tfjs-wasm's broadcasting compare / Tile kernels are slow (docs/performance.md).
 */
export function hfAttentionMask(keyMask: number[][], queryLength: number, groups: number): tf.Tensor4D {
  const B = keyMask.length;
  const Lk = keyMask[0]?.length ?? 0;
  const past = Lk - queryLength;
  const rows = groups * queryLength;
  const mask = new Uint8Array(B * rows * Lk); // [B, 1, g·Lq, Lk]
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < queryLength; t++) {
      for (let j = 0; j <= past + t; j++) {
        if (keyMask[b]![j] === 0) continue;
        for (let g = 0; g < groups; g++) mask[(b * rows + g * queryLength + t) * Lk + j] = 1;
      }
    }
  }
  return tf.tensor4d(mask, [B, 1, rows, Lk], 'bool');
}

/**
 * `value` as checked `[B, L]` rows: a rank-2 tensor or number rows of exactly that shape, every entry passing
 * `check` (errors name `owner`, the argument, the position, the expected and the actual value).
 */
export function readHFIntRows(owner: string, name: string, value: HFIntRows, B: number, L: number, check: (v: number) => boolean, expected: string): number[][] {
  let rows: number[][];
  if (value instanceof tf.Tensor) {
    assertTensor(owner, name, value, { rank: 2, dtypes: ['int32', 'float32'] });
    rows = value.arraySync() as number[][];
  } else if (Array.isArray(value) && value.every((r) => Array.isArray(r))) {
    rows = value;
  } else {
    throw new Error(`${owner}: ${name} must be [B, L] rows or a rank-2 tensor, got ${describeValue(value)}`);
  }
  if (rows.length !== B || rows.some((r) => r.length !== L)) {
    throw new Error(`${owner}: ${name} must be [${B}, ${L}], got [${rows.length}, ${rows[0]?.length ?? 0}]`);
  }
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      if (!check(rows[b]![t]!)) throw new Error(`${owner}: ${name}[${b}][${t}] must be ${expected}, got ${describeValue(rows[b]![t])}`);
    }
  }
  return rows;
}

/** The constructor's options must be an object (checked before `super` sees them). */
function checkedArgs(args: HFCausalLMArgs): ModuleArgs {
  assertOptionsObject('HFCausalLM', 'args', args);
  return { name: args.name, trainable: args.trainable };
}

export class HFCausalLM extends Module {
  static readonly className = 'HFCausalLM';
  /** The resolved config. */
  readonly hfConfig: ResolvedHFDecoderConfig;
  /** The `config.json` it was built from. */
  readonly configJson: Record<string, unknown>;
  readonly embedTokens: Embedding;
  readonly layers: HFDecoderLayer[];
  readonly finalNorm: RMSNorm;
  readonly lmHead: Linear | null;
  private readonly attachedHooks = new AttachedHooks({
    owner: 'HFCausalLM.addHooks',
    numLayers: () => this.layers.length,
    addChild: (name, module) => void this.addModule(name, module),
    removeChild: (name) => void this.removeModule(name),
  });

  constructor(args: HFCausalLMArgs) {
    super(checkedArgs(args));
    const c = resolveHFDecoderConfig(args.config);
    this.hfConfig = c;
    this.configJson = { ...(args.config as Record<string, unknown>) };
    this.embedTokens = this.addModule('model.embed_tokens', new Embedding({ numEmbeddings: c.vocabSize, embeddingDim: c.hiddenSize }));
    this.layers = [];
    for (let i = 0; i < c.numLayers; i++) this.layers.push(this.addModule(`model.layers.${i}`, new HFDecoderLayer({ config: c })));
    this.finalNorm = this.addModule('model.norm', new RMSNorm({ dim: c.hiddenSize, eps: c.rmsEps }));
    this.lmHead = c.tieWordEmbeddings
      ? null
      : this.addModule('lm_head', new Linear({ inFeatures: c.hiddenSize, outFeatures: c.vocabSize, bias: false }));
    this.built = true;
  }

  /** Attached hooks in attach order. */
  get hooks(): DecoderHooks[] {
    return this.attachedHooks.hooks;
  }

  /** True when some attached hook cannot run on cached decode steps (`generate` then re-runs full sequences). */
  get requiresFullSequence(): boolean {
    return this.attachedHooks.requiresFullSequence;
  }

  /**
   * Attach hooks (after those attached earlier). Their modules become children of this model under
   * their `namedModules` names, or `hooks.<attachId>.<i>`, until `remove()` (as on the host decoder).
   */
  addHooks(hooks: DecoderHooks): HookHandle {
    this.assertUsable();
    return this.attachedHooks.add(hooks);
  }

  /** Freeze every parameter except those of attached hooks' modules (`ModuleHost.freezeBase`). */
  freezeBase(): void {
    this.attachedHooks.freezeBase(this);
  }

  /** The base model's shape in HF names (`model_type` `llama` / `qwen2`; see `ModuleHost`). */
  baseModelShape(): BaseModelShape {
    const c = this.hfConfig;
    return {
      model_type: c.modelType,
      hidden_size: c.hiddenSize,
      num_hidden_layers: c.numLayers,
      num_attention_heads: c.numHeads,
      num_key_value_heads: c.numKeyValueHeads,
      rope_theta: c.ropeTheta,
      vocab_size: c.vocabSize,
    };
  }

  /** `ids [B, L]` → `[B, L, H]` embedding rows (for building `inputsEmbeds`). */
  embed(inputIds: HFIntRows): tf.Tensor3D {
    this.assertUsable();
    const V = this.hfConfig.vocabSize;
    const [B, L] = inputIds instanceof tf.Tensor ? inputIds.shape : [inputIds.length, inputIds[0]?.length ?? 0];
    const ids = readHFIntRows('HFCausalLM.embed', 'inputIds', inputIds, B, L, (v) => Number.isInteger(v) && v >= 0 && v < V, `a token id in [0, ${V})`);
    return tf.tidy(() => tf.reshape(this.embedTokens.lookup(ids.flat()), [B, L, this.hfConfig.hiddenSize]) as tf.Tensor3D);
  }

  /** `hidden [B, L, H]` → logits `[B, L, V]` (final norm, then `lm_head` or the tied embedding). */
  logitsFromHidden(hidden: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, L, H] = hidden.shape;
      const normed = tf.reshape(this.finalNorm.forward(hidden), [B * L, H]) as tf.Tensor2D; // [B·L, H]
      const logits = this.lmHead ? this.lmHead.forward(normed) : matMul2dTransposeB(normed, this.embedTokens.weightValue); // [B·L, V]
      return tf.reshape(logits, [B, L, this.hfConfig.vocabSize]) as tf.Tensor3D;
    });
  }

  /**
   * One forward over new tokens (`inputIds` or `inputsEmbeds`), after `cache` when given.
   * Returns logits `[B, L, V]` and, with `useCache`, the cache including these tokens.
   */
  forward(options: HFForwardOptions): HFForwardResult {
    this.assertUsable();
    const owner = 'HFCausalLM.forward';
    assertOptionsObject(owner, 'options', options as unknown);
    const c = this.hfConfig;
    if ((options.inputIds == null) === (options.inputsEmbeds == null)) {
      throw new Error(`${owner}: give exactly one of inputIds and inputsEmbeds, got ${options.inputIds == null ? 'neither' : 'both'}`);
    }
    let B: number;
    let L: number;
    const inputsEmbeds: unknown = options.inputsEmbeds;
    if (inputsEmbeds != null) {
      assertTensor(owner, 'inputsEmbeds', inputsEmbeds, { rank: 3, dtypes: ['float32'] });
      [B, L] = inputsEmbeds.shape as [number, number, number];
      if (inputsEmbeds.shape[2] !== c.hiddenSize) {
        throw new Error(`${owner}: inputsEmbeds must be [B, L, ${c.hiddenSize}], got [${inputsEmbeds.shape}]`);
      }
    } else {
      const ids = options.inputIds!;
      [B, L] = ids instanceof tf.Tensor ? ids.shape : [Array.isArray(ids) ? ids.length : 0, Array.isArray(ids) ? (ids[0]?.length ?? 0) : 0];
    }
    if (B === 0 || L === 0) throw new Error(`${owner}: the input must have at least one sample and one token, got [${B}, ${L}]`);
    const cache = options.cache ?? null;
    if (cache) {
      if (cache.layers.length !== this.layers.length || cache.keyMask.length !== B) {
        throw new Error(`${owner}: cache must hold ${this.layers.length} layers of batch ${B}, got ${cache.layers.length} layers of batch ${cache.keyMask.length}`);
      }
    }
    const mask = options.attentionMask == null
      ? Array.from({ length: B }, () => new Array<number>(L).fill(1))
      : readHFIntRows(owner, 'attentionMask', options.attentionMask, B, L, (v) => v === 0 || v === 1, '0 or 1');
    let positions: number[][];
    if (options.positionIds != null) {
      positions = readHFIntRows(owner, 'positionIds', options.positionIds, B, L, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
    } else {
      // HF generate: position = cumsum(mask) − 1 over the whole sequence, padding slots 1.
      positions = mask.map((row, b) => {
        let next = cache ? cache.nextPositions[b]! : 0;
        return row.map((m) => (m ? next++ : 1));
      });
    }
    const nextPositions = positions.map((row, b) => {
      let next = cache ? cache.nextPositions[b]! : 0;
      row.forEach((p, t) => {
        if (mask[b]![t]) next = p + 1;
      });
      return next;
    });
    const keyMask = mask.map((row, b) => [...(cache?.keyMask[b] ?? []), ...row]);
    const maxPosition = Math.max(...positions.flat());
    const inputIds = options.inputIds;
    const hooks = this.attachedHooks;
    let finish = (): void => undefined;
    const run = () => tf.tidy(() => {
      const embeds = options.inputsEmbeds ?? this.embed(inputIds!); // [B, L, H]
      const positionTensor = tf.tensor2d(positions, [B, L], 'int32');
      const maskTensor = tf.tensor2d(mask, [B, L], 'float32');
      const ctx = this.textContext(embeds, positionTensor, maskTensor, mask, !cache, options.context);
      const { cos, sin } = hfRotaryTables(c, positionTensor, maxPosition); // [B, 1, L, d], shared by the layers
      const attentionMask = hfAttentionMask(keyMask, L, c.numHeads / c.numKeyValueHeads); // [B, 1, g·L, Lk]
      finish = hooks.prepare(ctx);
      let h = embeds;
      const present: tf.Tensor[] = [];
      this.layers.forEach((layer, index) => {
        h = hooks.beforeLayer(index, h, ctx);
        const result = layer.forward(h, {
          cos, sin, mask: attentionMask, past: cache?.layers[index] ?? null,
          returnProbs: hooks.needsAttentionProbs(index),
          afterAttention: hooks.afterAttention(index, ctx),
        });
        h = result.hidden;
        if (options.useCache) present.push(result.present.keys, result.present.values);
      });
      return { logits: this.logitsFromHidden(h), present };
    });
    let out: ReturnType<typeof run>;
    try {
      out = run();
    } finally {
      finish();
    }
    if (!options.useCache) return { logits: out.logits, cache: null };
    const layers: LayerCache[] = [];
    for (let i = 0; i < out.present.length; i += 2) layers.push({ keys: out.present[i] as tf.Tensor4D, values: out.present[i + 1] as tf.Tensor4D });
    return { logits: out.logits, cache: { layers, keyMask, nextPositions } };
  }

  /** Text-only hook context of this call's tokens (`overrides` replace fields). */
  private textContext(
    embeds: tf.Tensor3D,
    positions: tf.Tensor2D,
    mask: tf.Tensor2D,
    rows: number[][],
    isPrefill: boolean,
    overrides: Partial<ForwardContext> | undefined,
  ): ForwardContext {
    const [B, L] = positions.shape;
    const imageSpans = overrides?.imageSpans ?? Array.from({ length: B }, () => []);
    return {
      inputEmbeddings: embeds,
      positions,
      attentionMask: mask,
      textMask: mask,
      promptMask: isPrefill ? mask : tf.zeros([B, L]),
      systemMask: tf.zeros([B, L]),
      imageSpans,
      imageToSample: [],
      hasImage: tf.zeros([B]),
      imageFeatures: null,
      visualTokens: null,
      lastPromptIndex: rows.map((row) => Math.max(row.lastIndexOf(1), 0)),
      isPrefill,
      imageTables: imageTablesFromSpans(imageSpans),
      ...overrides,
    };
  }

  /**
   * Greedy decoding: `inputIds [B, L]` (left or right padded per `attentionMask`) → the new tokens of each
   * sample (up to `maxNewTokens`, ending at its first eos). Each sample continues from its last real
   * token; new tokens follow the whole padded prompt (padding stays masked), with positions counting
   * on from the sample's last one. Uses the KV cache unless an attached hook `requiresFullSequence`.
   */
  generate(inputIds: HFIntRows, options: HFGenerateOptions): number[][] {
    this.assertUsable();
    const owner = 'HFCausalLM.generate';
    assertOptionsObject(owner, 'options', options as unknown);
    const { maxNewTokens } = options;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new Error(`${owner}: options.maxNewTokens must be a positive integer, got ${describeValue(maxNewTokens)}`);
    const eos = options.eosTokenId == null ? [] : Array.isArray(options.eosTokenId) ? options.eosTokenId : [options.eosTokenId];
    const pad = options.padTokenId ?? eos[0] ?? 0;
    const V = this.hfConfig.vocabSize;
    const [B, L] = inputIds instanceof tf.Tensor ? inputIds.shape : [inputIds.length, inputIds[0]?.length ?? 0];
    const ids = readHFIntRows(owner, 'inputIds', inputIds, B, L, (v) => Number.isInteger(v) && v >= 0 && v < V, `a token id in [0, ${V})`);
    const mask = options.attentionMask == null
      ? ids.map((row) => row.map(() => 1))
      : readHFIntRows(owner, 'attentionMask', options.attentionMask, B, L, (v) => v === 0 || v === 1, '0 or 1');
    const lastReal = mask.map((row, b) => {
      const last = row.lastIndexOf(1);
      if (last < 0) throw new Error(`${owner}: attentionMask row ${b} has no real token`);
      return last;
    });
    const argmaxRows = (logits: tf.Tensor3D, rowOf: (b: number) => number): number[] => {
      const [, Lq] = logits.shape;
      const data = logits.dataSync();
      return lastReal.map((_, b) => {
        const offset = (b * Lq + rowOf(b)) * V;
        let best = 0;
        for (let v = 1; v < V; v++) if (data[offset + v]! > data[offset + best]!) best = v;
        return best;
      });
    };
    const out: number[][] = Array.from({ length: B }, () => []);
    const done = new Array<boolean>(B).fill(false);
    const take = (next: number[]): number[] => next.map((token, b) => {
      if (done[b]) return pad;
      out[b]!.push(token);
      if (eos.includes(token)) done[b] = true;
      return token;
    });
    const full = this.requiresFullSequence;
    let cache: HFKVCache | null = null;
    const seqIds = ids.map((row) => [...row]);
    const seqMask = mask.map((row) => [...row]);
    try {
      const first = this.forward({ inputIds: ids, attentionMask: mask, useCache: !full });
      cache = first.cache;
      let next = take(argmaxRows(first.logits, (b) => lastReal[b]!));
      first.logits.dispose();
      for (let step = 1; step < maxNewTokens && !done.every(Boolean); step++) {
        seqIds.forEach((row, b) => row.push(next[b]!));
        seqMask.forEach((row) => row.push(1));
        let logits: tf.Tensor3D;
        if (full) {
          logits = this.forward({ inputIds: seqIds, attentionMask: seqMask }).logits;
          next = take(argmaxRows(logits, () => seqIds[0]!.length - 1));
        } else {
          const r: HFForwardResult = this.forward({ inputIds: next.map((t) => [t]), cache, useCache: true });
          disposeHFCache(cache);
          cache = r.cache;
          logits = r.logits;
          next = take(argmaxRows(logits, () => 0));
        }
        logits.dispose();
      }
    } finally {
      disposeHFCache(cache);
    }
    return out;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward({ inputIds: (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor2D }).logits;
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape, this.hfConfig.vocabSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: this.configJson as tf.serialization.ConfigDict };
  }
}
tf.serialization.registerClass(HFCausalLM, 'mllm');
