/**
 * LoRRA (low-rank residual attention): the Wings visual/textual learner (reference class
 * `WingsAttention`). A cross-attention from the LLM's residual stream `X` to a feature source `F`
 * whose projections are the identity plus a low-rank correction, and whose output projection is
 * purely low-rank (zero at init, so a fresh learner adds exactly 0):
 *
 *   Q = X + (X·A_qᵀ)·B_qᵀ          [B, Lq, H]
 *   K = F + (F·A_kᵀ)·B_kᵀ          [B, Lk, H]
 *   V = F + (F·A_vᵀ)·B_vᵀ          [B, Lk, H]
 *   q, k = rope(split(Q), posQ), rope(split(K), posK)     [B, h, L, d], rotate-half, θ = LLM's rope θ
 *   P = softmax_float32(q·kᵀ/√d + mask)                    [B, h, Lq, Lk]
 *   O = merge(P·split(V))                                  [B, Lq, H]
 *   out = (O·A_oᵀ)·B_oᵀ                                    [B, Lq, H]   (no residual)
 *
 * No alpha/r scaling, no bias, always full multi-head (no grouped keys/values: K and V keep width H
 * because of their identity residual). Parameter names are the reference's:
 * `{q,k,v,o}_proj.0.weight` (`A`, `[r, H]`) and `{q,k,v,o}_proj.1.weight` (`B`, `[H, r]`).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  Module,
  applyRotary,
  assertBinaryMask,
  assertFiniteNumber,
  checkedOptions,
  assertOptionsObject,
  assertPositiveInt,
  assertTensor,
  isHostMemoryBackend,
  scaledDotProductAttention,
  mergeHeads,
  positionCausalMask,
  rotaryCosSin,
  splitHeads,
  zeroMasked,
  type ModuleArgs,
} from '@mllm/core';
import { LowRankProjection } from './low-rank-projection.js';

export interface LoRRAArgs extends ModuleArgs {
  /** LLM hidden size H (= numHeads · headDim). */
  hiddenSize: number;
  /** Number of attention heads h (the LLM's `num_attention_heads`; never the grouped KV count). */
  numHeads: number;
  /** Low-rank dimension r (reference `lora_dim`; 64 in the release scripts). */
  rank: number;
  /** Rotary base θ (the LLM's `rope_theta`; Qwen1.5: 1e6). */
  ropeTheta: number;
  /** Std of the down-projections' normal init (default 0.02). */
  initStd?: number;
}

/** The subset of a HF `config.json` that `LoRRA.fromReferenceConfig` reads. */
export interface LoRRAReferenceConfig {
  hidden_size: number;
  num_attention_heads: number;
  lora_dim: number;
  rope_theta?: number;
}

/** What a fully masked query row becomes: zeros (clean) or a uniform average (reference additive dtype-min mask). */
export type FullyMaskedRows = 'zero' | 'uniform';

export interface LoRRAInputs {
  /** Query stream X `[B, Lq, H]` (Wings: the residual `h_in + attn`). */
  query: tf.Tensor;
  /** Key/value source F `[B, Lk, H]`. */
  source: tf.Tensor;
  /** Real positions of the queries `[B, Lq]` (int or float). */
  queryPositions: tf.Tensor;
  /** Real positions of the keys `[B, Lk]`. */
  keyPositions: tf.Tensor;
  /** `[B, Lk]`, 1 = real key, 0 = padding key (never attended). */
  keyMask?: tf.Tensor | null;
  /** A query sees only keys whose real position is not after its own (`posK ≤ posQ`). */
  causalByPosition?: boolean;
  /** Extra mask `[B, Lq, Lk]` (nonzero = attend), combined with the others (used by `referenceCompat`). */
  attendMask?: tf.Tensor | null;
  /** Fully masked rows: `'zero'` (default: the learner adds nothing there) or `'uniform'` (reference). */
  fullyMaskedRows?: FullyMaskedRows;
}

const LORRA_KEYS = ['hiddenSize', 'numHeads', 'rank', 'ropeTheta', 'initStd'];


function assertShape(owner: string, name: string, t: tf.Tensor, expected: Array<number | null>): void {
  assertTensor(owner, name, t);
  const ok = t.rank === expected.length && expected.every((d, i) => d === null || t.shape[i] === d);
  if (!ok) {
    const shown = expected.map((d) => (d === null ? '*' : String(d))).join(', ');
    throw new Error(`${owner}: ${name} must have shape [${shown}], got [${t.shape.join(', ')}]`);
  }
}

/** Combine boolean-ish masks by logical AND (null entries skipped); returns null when none. */
/**
 * AND of `[B|1, 1, Lq|1, Lk|1]` masks (bool or 0/1) → `[B, 1, Lq, Lk]` bool, or null when none.
 * On cpu/wasm (host memory, cheap synchronous reads) several masks are combined in JavaScript: tfjs'
 * broadcasting `LogicalAnd` took ~7 ms for 256 × 256 on wasm.
 */
function andMasks(masks: Array<tf.Tensor | null>, B: number, Lq: number, Lk: number): tf.Tensor | null {
  const present = masks.filter((m): m is tf.Tensor => m !== null);
  if (present.length > 1 && isHostMemoryBackend()) {
    const out = new Uint8Array(B * Lq * Lk).fill(1); // [B, 1, Lq, Lk]
    for (const m of present) {
      const [mb, , mq, mk] = m.shape as [number, number, number, number];
      const values = m.dataSync();
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < Lq; i++) {
          const row = ((mb === 1 ? 0 : b) * mq + (mq === 1 ? 0 : i)) * mk;
          const target = (b * Lq + i) * Lk;
          for (let j = 0; j < Lk; j++) if (!values[row + (mk === 1 ? 0 : j)]) out[target + j] = 0;
        }
      }
    }
    return tf.tensor4d(out, [B, 1, Lq, Lk], 'bool');
  }
  let out: tf.Tensor | null = null;
  for (const m of present) {
    const asBool = m.dtype === 'bool' ? m : tf.notEqual(m, 0);
    out = out ? tf.logicalAnd(out, asBool) : asBool;
  }
  return out;
}

/**
 * Wings' low-rank residual attention learner. Reference parameters `{q,k,v,o}_proj.{0,1}.weight`
 * (PyTorch `[out, in]`); in a host they sit under `model.layers.{i}.attn_pool.` (visual) or
 * `attn_t_pool.` (textual): load one with `learner.loadStateDict(dict, { prefix: 'model.layers.3.attn_pool.' })`
 * (the `stateDict` / `loadStateDict` methods are `Module`'s).
 */
export class LoRRA extends Module {
  static readonly className = 'LoRRA';
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly rank: number;
  readonly ropeTheta: number;
  readonly initStd: number;
  readonly qProj: LowRankProjection;
  readonly kProj: LowRankProjection;
  readonly vProj: LowRankProjection;
  readonly oProj: LowRankProjection;

  constructor(args: LoRRAArgs) {
    super(checkedOptions('LoRRA', args, LORRA_KEYS));
    assertPositiveInt('LoRRA', 'hiddenSize', args.hiddenSize);
    assertPositiveInt('LoRRA', 'numHeads', args.numHeads);
    assertPositiveInt('LoRRA', 'rank', args.rank);
    if (args.hiddenSize % args.numHeads !== 0) {
      throw new Error(`LoRRA: hiddenSize (${args.hiddenSize}) must be divisible by numHeads (${args.numHeads})`);
    }
    if ((args.hiddenSize / args.numHeads) % 2 !== 0) {
      throw new Error(`LoRRA: head dimension hiddenSize/numHeads must be even for rotary, got ${args.hiddenSize / args.numHeads}`);
    }
    if (typeof args.ropeTheta !== 'number' || !(args.ropeTheta > 0)) {
      throw new Error(`LoRRA: ropeTheta must be a positive number, got ${String(args.ropeTheta)}`);
    }
    this.hiddenSize = args.hiddenSize;
    this.numHeads = args.numHeads;
    this.headDim = args.hiddenSize / args.numHeads;
    this.rank = args.rank;
    this.ropeTheta = args.ropeTheta;
    this.initStd = args.initStd ?? 0.02;
    assertFiniteNumber('LoRRA', 'initStd', this.initStd);
    if (this.initStd < 0) throw new Error(`LoRRA: initStd must be >= 0, got ${this.initStd}`);
    const projection = () =>
      new LowRankProjection({ inFeatures: this.hiddenSize, outFeatures: this.hiddenSize, rank: this.rank, initStd: this.initStd });
    this.qProj = this.addModule('q_proj', projection());
    this.kProj = this.addModule('k_proj', projection());
    this.vProj = this.addModule('v_proj', projection());
    this.oProj = this.addModule('o_proj', projection());
    this.built = true;
  }

  /**
   * Build from a reference (HF) config: `hidden_size`, `num_attention_heads`, `lora_dim`,
   * `rope_theta` (default 10000, HF's default). `num_key_value_heads` is deliberately ignored:
   * the learners are always full multi-head.
   */
  static fromReferenceConfig(config: LoRRAReferenceConfig, args: Partial<LoRRAArgs> = {}): LoRRA {
    for (const key of ['hidden_size', 'num_attention_heads', 'lora_dim'] as const) {
      if (typeof config[key] !== 'number') {
        throw new Error(`LoRRA.fromReferenceConfig: config.${key} must be a number, got ${String(config[key])}`);
      }
    }
    return new LoRRA({
      ...args,
      hiddenSize: config.hidden_size,
      numHeads: config.num_attention_heads,
      rank: config.lora_dim,
      ropeTheta: config.rope_theta ?? 10000,
    });
  }

  /** `X [B, Lq, H]`, `F [B, Lk, H]` → `[B, Lq, H]` (see the class comment for the formula). */
  forward(inputs: LoRRAInputs): tf.Tensor3D {
    this.assertUsable();
    assertOptionsObject('LoRRA.forward', 'inputs', inputs);
    const { query, source, queryPositions, keyPositions } = inputs;
    const H = this.hiddenSize;
    assertShape('LoRRA', 'query', query, [null, null, H]);
    const [B, Lq] = query.shape as [number, number, number];
    assertShape('LoRRA', 'source', source, [B, null, H]);
    const Lk = source.shape[1] as number;
    assertShape('LoRRA', 'queryPositions', queryPositions, [B, Lq]);
    assertShape('LoRRA', 'keyPositions', keyPositions, [B, Lk]);
    if (inputs.keyMask) {
      assertShape('LoRRA', 'keyMask', inputs.keyMask, [B, Lk]);
      assertBinaryMask('LoRRA', 'keyMask', inputs.keyMask);
    }
    if (inputs.attendMask) {
      assertShape('LoRRA', 'attendMask', inputs.attendMask, [B, Lq, Lk]);
      assertBinaryMask('LoRRA', 'attendMask', inputs.attendMask);
    }
    const fullyMaskedRows = inputs.fullyMaskedRows ?? 'zero';
    if (fullyMaskedRows !== 'zero' && fullyMaskedRows !== 'uniform') {
      throw new Error(`LoRRA: fullyMaskedRows must be 'zero' or 'uniform', got ${String(fullyMaskedRows)}`);
    }
    const h = this.numHeads;
    const d = this.headDim;
    return tf.tidy(() => {
      // Padding keys (keyMask 0) are selected to exactly 0, features and positions, before any
      // product: masking the probabilities alone lets a NaN there through (0 · NaN = NaN). Under
      // 'uniform' a fully masked row still averages every key's raw value, padding included (below).
      const keyMask = inputs.keyMask ?? null;
      const cleanSource = keyMask ? zeroMasked(source, keyMask) : source; // [B, Lk, H]
      const cleanKeyPositions = (keyMask ? zeroMasked(tf.cast(keyPositions, 'float32'), keyMask) : tf.cast(keyPositions, 'float32')) as tf.Tensor2D; // [B, Lk]
      const q = tf.add(query, this.qProj.forward(query)); // [B, Lq, H]
      const k = tf.add(cleanSource, this.kProj.forward(cleanSource)); // [B, Lk, H]
      const v = tf.add(cleanSource, this.vProj.forward(cleanSource)); // [B, Lk, H]
      const qCosSin = rotaryCosSin(tf.cast(queryPositions, 'float32') as tf.Tensor2D, d, this.ropeTheta); // [B, 1, Lq, d]
      const kCosSin = rotaryCosSin(cleanKeyPositions, d, this.ropeTheta); // [B, 1, Lk, d]
      const qHeads = applyRotary(splitHeads(q, h), qCosSin.cos, qCosSin.sin); // [B, h, Lq, d]
      const kHeads = applyRotary(splitHeads(k, h), kCosSin.cos, kCosSin.sin); // [B, h, Lk, d]
      const vHeads = splitHeads(v, h); // [B, h, Lk, d]

      const mask = andMasks([
        inputs.causalByPosition ? positionCausalMask(queryPositions as tf.Tensor2D, keyPositions as tf.Tensor2D) : null, // [B, 1, Lq, Lk]
        inputs.keyMask ? tf.reshape(inputs.keyMask, [B, 1, 1, Lk]) : null, // [B, 1, 1, Lk]
        inputs.attendMask ? tf.reshape(inputs.attendMask, [B, 1, Lq, Lk]) : null, // [B, 1, Lq, Lk]
      ], B, Lq, Lk);
      // Core's attention: q·kᵀ/√d by batchMatMulTransposeB, float32 masked softmax (fully masked rows
      // 0), ·v. Under 'uniform' those rows get the mean of the raw values (padding keys included,
      // unlike `vHeads` above), as the reference's additive dtype-min mask gives.
      const uniformValues = mask && fullyMaskedRows === 'uniform' ? splitHeads(tf.add(source, this.vProj.forward(source)), h) : null; // [B, h, Lk, d]
      const { output: o } = scaledDotProductAttention(qHeads, kHeads, vHeads, mask, { fullyMaskedRows, uniformValues }); // [B, h, Lq, d]
      const merged = mergeHeads(o as tf.Tensor4D); // [B, Lq, H]
      return this.oProj.forward(merged) as tf.Tensor3D; // [B, Lq, H]
    });
  }

  /**
   * Layers-API entry: `[query, source, queryPositions, keyPositions, keyMask?, attendMask?]` with
   * kwargs `causalByPosition` and `fullyMaskedRows` (as in `forward`; a null/absent mask is none).
   */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown> = {}): tf.Tensor {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    if (list.length < 4 || list.length > 6) {
      throw new Error(`LoRRA.call: expects [query, source, queryPositions, keyPositions, keyMask?, attendMask?], got ${list.length} tensors`);
    }
    const known = new Set(['causalByPosition', 'fullyMaskedRows', 'training']);
    const unknown = Object.keys(kwargs).filter((key) => !known.has(key));
    if (unknown.length > 0) {
      throw new Error(`LoRRA.call: unknown kwargs ${unknown.join(', ')} (expected causalByPosition, fullyMaskedRows)`);
    }
    return tf.tidy(() =>
      this.forward({
        query: list[0],
        source: list[1],
        queryPositions: list[2],
        keyPositions: list[3],
        keyMask: list[4] ?? null,
        attendMask: list[5] ?? null,
        causalByPosition: Boolean(kwargs['causalByPosition']),
        fullyMaskedRows: kwargs['fullyMaskedRows'] as FullyMaskedRows | undefined,
      }),
    );
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const first = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [first[0], first[1], this.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      hiddenSize: this.hiddenSize,
      numHeads: this.numHeads,
      rank: this.rank,
      ropeTheta: this.ropeTheta,
      initStd: this.initStd,
    };
  }
}
tf.serialization.registerClass(LoRRA, 'mllm');
