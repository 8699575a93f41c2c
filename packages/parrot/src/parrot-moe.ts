/**
 * Parrot's multilingual mixture of experts (`MultilingualMoE` in AIDC-AI/Parrot,
 * `parrot/model/moe_model/moe.py`), batched for TF.js.
 *
 * For sample b with projected visual tokens `H_b [N, D]` (row 0 = projected CLS) and the
 * embeddings of its prompt text `X_b [T, D]` (real tokens marked by `textMask`):
 *
 *   a_b = softmax_T( H_b[0] · X_bᵀ / √D )            text attention, masked        [T]
 *   g_b = a_b · X_b                                    pooled text                   [D]
 *   w_b = softmax_E( g_b · W_gateᵀ )                   routing weights (bias-free)   [E]
 *   Y_{b,i} = down_i( silu(gate_i(H_b)) ⊙ up_i(H_b) )  SwiGLU expert i, bias-free    [N, D]
 *   out_b = Σ_i w_{b,i} · Y_{b,i} + α · H_b            (α·H_b only when the residual is on)
 *
 * With `useMoe` false (Parrot's stage 1) the output is `H` unchanged.
 *
 * Beyond the reference, both off by default: top-k sparse routing (`topK`, weights renormalized
 * over the k selected experts) and a Switch-style load-balancing loss (`auxLossCoefficient`).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  Linear,
  Module,
  disposeTensorMap,
  loadSafetensors,
  readSafetensorsHeader,
  StateDictError,
  suggestStateDictPrefix,
  SwiGLU,
  assertBinaryMask,
  assertBoolean,
  assertFiniteNumber,
  checkedOptions,
  assertOptionsObject,
  assertPositiveInt,
  assertTensor,
  zeroMasked,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type ModuleArgs,
} from '@mllm/core';
import { clsTextAttention, loadBalancingLoss, poolText, renormalizeTopK, topKMask } from './routing.js';
import { mixExperts, type ExpertOffload, type ExpertStrategy } from './experts.js';
import { parseReferenceConfig, type ReferenceConfigOptions } from './reference-config.js';

/** Prefix of the MoE's parameters in a full Parrot checkpoint (`ParrotQwen2ForCausalLM.model.moe_model`). */
export const PARROT_CHECKPOINT_PREFIX = 'model.moe_model.';

/** Constructor arguments of {@link ParrotMoE} (also its `getConfig()` shape). */
export interface ParrotMoEArgs extends ModuleArgs {
  /** `D`: LLM hidden size (`moe_hidden_size`). */
  hiddenSize: number;
  /** `I`: expert intermediate size (`moe_intermediate_size`). */
  intermediateSize: number;
  /** `E`: number of experts (`num_experts`). */
  numExperts: number;
  /** `α`: scale of the residual visual tokens (`moe_weight`, default 0.1 as trained). */
  moeWeight?: number;
  /** Run the MoE (`use_moe`, default true). False = identity (stage 1). */
  useMoe?: boolean;
  /** Add `α·H` (`use_moe_residual`, default true). */
  useResidual?: boolean;
  /**
   * Beyond the reference: sparse routing over the `topK` largest router probabilities
   * (renormalized). `null`/absent = dense softmax routing as Parrot (default). Note Parrot's
   * `moe_top_k` config key is stored but never used by the reference; it does not set this.
   */
  topK?: number | null;
  /**
   * Beyond the reference: coefficient `c` of the load-balancing loss `c · E · Σ_i f_i·P_i`
   * returned as `auxLoss` (see `loadBalancingLoss`). 0 = off (default; Parrot has none).
   */
  auxLossCoefficient?: number;
  /**
   * How the experts are evaluated (same math): `separate` (default: E × three 2-D matMuls,
   * no weight copies), `wide` (kernels concatenated to three large 2-D matMuls: faster backward
   * on wasm but copies all expert kernels every call), `stacked` (batched 3-D matMuls: slow on wasm).
   */
  expertStrategy?: ExpertStrategy;
}

/** Inputs of {@link ParrotMoE.forward}. */
export interface ParrotMoEInputs {
  /** `[B, N, D]` projected visual tokens, row 0 of each sample = projected CLS token. */
  visual: tf.Tensor3D;
  /** `[B, T, D]` text token embeddings (the prompt's non-supervised tokens), right/any padded. */
  text: tf.Tensor3D;
  /** `[B, T]` 1/true = real text token, 0/false = padding. Absent = all real. */
  textMask?: tf.Tensor2D | null;
}

/** Outputs of {@link ParrotMoE.forward} (new tensors owned by the caller). */
export interface ParrotMoEOutputs {
  /** `[B, N, D]` transformed visual tokens (the input unchanged when the MoE is off). */
  output: tf.Tensor3D;
  /** `[B, E]` routing weights used for the mixture (after top-k renormalization when enabled). */
  routingWeights: tf.Tensor2D;
  /** `[B, T]` CLS→text attention (0 at masked positions; an all-masked row is all 0). */
  textAttention: tf.Tensor2D;
  /** Scalar load-balancing loss, only when `auxLossCoefficient > 0` and the MoE is on. */
  auxLoss?: tf.Scalar;
}

/** Parrot's training stages: 1 = MoE bypassed and frozen, 2 = MoE active and trainable. */
export type ParrotStage = 1 | 2;

const PARROT_MOE_KEYS = [
  'hiddenSize', 'intermediateSize', 'numExperts', 'moeWeight', 'useMoe', 'useResidual', 'topK', 'auxLossCoefficient', 'expertStrategy',
];


function describeShape(t: tf.Tensor | null | undefined): string {
  return t ? `[${t.shape.join(', ')}]` : String(t);
}

/**
 * Parrot's text-guided mixture of SwiGLU experts over the projected visual tokens.
 *
 * Parameters (reference names, PyTorch `[out, in]` layout at the state-dict boundary):
 * `gate.weight [E, D]`, `experts.{i}.gate_proj.weight [I, D]`, `experts.{i}.up_proj.weight [I, D]`,
 * `experts.{i}.down_proj.weight [D, I]`. Fresh init is PyTorch's Linear default `U(±1/√fan_in)`
 * (fan_in = D for the router, gate_proj and up_proj; I for down_proj), as the reference's MoE is
 * built after `from_pretrained` and never goes through HF's normal(0.02) init.
 */
export class ParrotMoE extends Module {
  static readonly className = 'ParrotMoE';
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numExperts: number;
  /** `α` (`moe_weight`). */
  moeWeight: number;
  /** False = identity (stage 1). */
  useMoe: boolean;
  useResidual: boolean;
  /** Sparse routing over the top k experts, or null for dense routing (the reference). */
  topK: number | null;
  auxLossCoefficient: number;
  expertStrategy: ExpertStrategy;
  /** The router `gate` (D→E, bias-free). */
  readonly gate: Linear;
  /** The experts `experts.{i}` (core SwiGLU: `gate_proj`, `up_proj`, `down_proj`, bias-free). */
  readonly experts: readonly SwiGLU[];
  /**
   * Where some experts run besides this thread: set by `ExpertThreads.start(moe)` from
   * `@mllm/parrot/threads` (Node, worker threads), null = all experts here (default). Runtime state,
   * not part of the config. Same results either way (bitwise on the same backend).
   */
  expertOffload: ExpertOffload | null = null;

  constructor(args: ParrotMoEArgs) {
    super(checkedOptions('ParrotMoE', args, PARROT_MOE_KEYS));
    const owner = 'ParrotMoE';
    assertPositiveInt(owner, 'hiddenSize', args.hiddenSize);
    assertPositiveInt(owner, 'intermediateSize', args.intermediateSize);
    assertPositiveInt(owner, 'numExperts', args.numExperts);
    this.hiddenSize = args.hiddenSize;
    this.intermediateSize = args.intermediateSize;
    this.numExperts = args.numExperts;
    this.moeWeight = args.moeWeight ?? 0.1;
    assertFiniteNumber(owner, 'moeWeight', this.moeWeight);
    this.useMoe = args.useMoe ?? true;
    assertBoolean(owner, 'useMoe', this.useMoe);
    this.useResidual = args.useResidual ?? true;
    assertBoolean(owner, 'useResidual', this.useResidual);
    this.topK = args.topK ?? null;
    if (this.topK !== null) {
      assertPositiveInt(owner, 'topK', this.topK);
      if (this.topK > this.numExperts) {
        throw new Error(`${owner}: topK must be at most numExperts (${this.numExperts}), got ${this.topK}`);
      }
    }
    this.auxLossCoefficient = args.auxLossCoefficient ?? 0;
    assertFiniteNumber(owner, 'auxLossCoefficient', this.auxLossCoefficient);
    if (this.auxLossCoefficient < 0) {
      throw new Error(`${owner}: auxLossCoefficient must be >= 0, got ${this.auxLossCoefficient}`);
    }
    this.expertStrategy = args.expertStrategy ?? 'separate';
    if (!['separate', 'stacked', 'wide'].includes(this.expertStrategy)) {
      throw new Error(`${owner}: expertStrategy must be 'separate', 'stacked' or 'wide', got '${String(args.expertStrategy)}'`);
    }
    // Registration order = the reference's: gate first, then experts.0 … experts.{E-1}.
    this.gate = this.addModule('gate', new Linear({ inFeatures: this.hiddenSize, outFeatures: this.numExperts, bias: false }));
    const experts: SwiGLU[] = [];
    for (let i = 0; i < this.numExperts; i++) {
      experts.push(
        this.addModule(`experts.${i}`, new SwiGLU({ hiddenSize: this.hiddenSize, intermediateSize: this.intermediateSize, bias: false })),
      );
    }
    this.experts = experts;
    this.built = true;
  }

  /**
   * Build from a released Parrot `config.json` (object or JSON text); see `parseReferenceConfig`.
   * Pitfall mirrored from the reference: without a `moe_weight` key α is 1.0, not the trained 0.1
   * (override with `options.missingMoeWeight`). `moe_top_k` is ignored (unused by the reference).
   * `overrides` set any other constructor argument (e.g. `expertStrategy`, `name`).
   */
  static fromReferenceConfig(
    json: string | object,
    options: ReferenceConfigOptions & { overrides?: Partial<ParrotMoEArgs> } = {},
  ): ParrotMoE {
    const { args } = parseReferenceConfig(json, options);
    return new ParrotMoE({ ...args, ...options.overrides });
  }

  /** Current stage: 2 when the MoE is active, 1 when bypassed. */
  get stage(): ParrotStage {
    return this.useMoe ? 2 : 1;
  }

  /**
   * Parrot's stage switch. Stage 1 (modality alignment): the MoE is bypassed (identity) and its
   * parameters are frozen. Stage 2 (instruction tuning): active and trainable. Mirrors the
   * reference's `tune_model`.
   */
  setStage(stage: ParrotStage): this {
    if (stage !== 1 && stage !== 2) throw new Error(`ParrotMoE.setStage: stage must be 1 or 2, got ${String(stage)}`);
    this.useMoe = stage === 2;
    this.setTrainable(stage === 2);
    return this;
  }

  /** Validate and return `[B, N, D]`, `[B, T, D]`, mask. */
  private checkInputs(inputs: ParrotMoEInputs): void {
    assertOptionsObject('ParrotMoE.forward', 'inputs', inputs);
    const { visual, text, textMask } = inputs;
    const D = this.hiddenSize;
    assertTensor('ParrotMoE.forward', 'visual', visual);
    assertTensor('ParrotMoE.forward', 'text', text);
    if (!visual || visual.rank !== 3 || visual.shape[2] !== D || visual.shape[1] < 1) {
      throw new Error(`ParrotMoE.forward: visual must be [B, N, ${D}] with N >= 1 (row 0 = CLS), got ${describeShape(visual)}`);
    }
    const B = visual.shape[0];
    if (!text || text.rank !== 3 || text.shape[0] !== B || text.shape[2] !== D) {
      throw new Error(`ParrotMoE.forward: text must be [${B}, T, ${D}], got ${describeShape(text)}`);
    }
    if (textMask != null) assertTensor('ParrotMoE.forward', 'textMask', textMask);
    if (textMask != null && (textMask.rank !== 2 || textMask.shape[0] !== B || textMask.shape[1] !== text.shape[1])) {
      throw new Error(`ParrotMoE.forward: textMask must be [${B}, ${text.shape[1]}], got ${describeShape(textMask)}`);
    }
    if (textMask != null) assertBinaryMask('ParrotMoE.forward', 'textMask', textMask);
    if (visual.dtype !== 'float32' || text.dtype !== 'float32') {
      throw new Error(`ParrotMoE.forward: visual and text must be float32, got ${visual.dtype} and ${text.dtype}`);
    }
  }

  /**
   * Eager forward. All returned tensors are new and owned by the caller; nothing else is kept.
   *
   * `visual [B, N, D]`, `text [B, T, D]`, `textMask [B, T]` → `output [B, N, D]`,
   * `routingWeights [B, E]`, `textAttention [B, T]`, and `auxLoss` (scalar) when enabled.
   * With the MoE off the output is the input (a copy) and no expert runs; routing weights and
   * text attention are still computed (cheap) for monitoring.
   */
  forward(inputs: ParrotMoEInputs): ParrotMoEOutputs {
    this.assertUsable();
    this.checkInputs(inputs);
    const { visual, text } = inputs;
    const textMask = inputs.textMask ?? null;
    const [B, N, D] = visual.shape;
    if (B === 0) {
      // An empty batch: empty outputs on every backend (wasm's kernels divide by the batch size).
      const empty: ParrotMoEOutputs = {
        output: tf.zeros([0, N, D]),
        routingWeights: tf.zeros([0, this.numExperts]),
        textAttention: tf.zeros([0, text.shape[1]]),
      };
      if (this.useMoe && this.auxLossCoefficient > 0) empty.auxLoss = tf.scalar(0);
      return empty;
    }
    return tf.tidy(() => {
      const cls = tf.reshape(tf.slice(visual, [0, 0, 0], [B, 1, D]), [B, D]) as tf.Tensor2D; // [B, D]
      // Padded positions are selected to exactly 0 (not multiplied by the mask: 0 · NaN = NaN), so
      // a NaN or Inf there reaches neither the scores nor the pooled text.
      const cleanText = (textMask ? zeroMasked(text, textMask) : text) as tf.Tensor3D; // [B, T, D]
      const textAttention = clsTextAttention(cls, cleanText, textMask); // [B, T]
      const pooled = poolText(textAttention, cleanText); // [B, D]
      const logits = this.gate.forward(pooled) as tf.Tensor2D; // [B, E]
      const probabilities = tf.softmax(logits) as tf.Tensor2D; // [B, E]
      let routingWeights = probabilities;
      let assignment: tf.Tensor2D | null = null;
      if (this.topK !== null) {
        assignment = topKMask(probabilities, this.topK); // [B, E]
        routingWeights = renormalizeTopK(probabilities, assignment); // [B, E]
      }
      if (!this.useMoe) {
        return { output: tf.clone(visual), routingWeights, textAttention } as unknown as tf.TensorContainer;
      }
      const kernels = this.experts.map((e) => ({ gate: e.gateProj.kernelValue, up: e.upProj.kernelValue, down: e.downProj.kernelValue }));
      const weightGradients = this.experts.some((e) => e.trainableVariables().length > 0);
      let output = mixExperts(visual, routingWeights, kernels, this.expertStrategy, { offload: this.expertOffload, weightGradients }); // [B, N, D]
      if (this.useResidual) output = tf.add(output, tf.mul(visual, this.moeWeight)) as tf.Tensor3D;
      const result: ParrotMoEOutputs = { output, routingWeights, textAttention };
      if (this.auxLossCoefficient > 0) {
        const k = this.topK ?? 1;
        const assigned = assignment ?? topKMask(probabilities, 1);
        result.auxLoss = tf.mul(loadBalancingLoss(probabilities, assigned, k), this.auxLossCoefficient) as tf.Scalar;
      }
      return result as unknown as tf.TensorContainer;
    }) as unknown as ParrotMoEOutputs;
  }

  /** tfjs Layer entry: `[visual, text, textMask?]` → output `[B, N, D]`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    if (!Array.isArray(inputs) || inputs.length < 2) {
      throw new Error('ParrotMoE.call: inputs must be [visual [B, N, D], text [B, T, D], textMask? [B, T]]');
    }
    const [visual, text, textMask] = inputs as [tf.Tensor3D, tf.Tensor3D, tf.Tensor2D | undefined];
    const result = this.forward({ visual, text, textMask });
    result.routingWeights.dispose();
    result.textAttention.dispose();
    result.auxLoss?.dispose();
    return result.output;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shapes = inputShape as tfl.Shape[];
    return Array.isArray(shapes[0]) ? (shapes[0] as tfl.Shape) : (inputShape as tfl.Shape);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      hiddenSize: this.hiddenSize,
      intermediateSize: this.intermediateSize,
      numExperts: this.numExperts,
      moeWeight: this.moeWeight,
      useMoe: this.useMoe,
      useResidual: this.useResidual,
      topK: this.topK,
      auxLossCoefficient: this.auxLossCoefficient,
      expertStrategy: this.expertStrategy,
    };
  }

  /**
   * Load the MoE's tensors from safetensors bytes, then with `loadStateDict` semantics (decoded tensors
   * are disposed afterwards). Prefix: `options.prefix` when given; otherwise `model.moe_model.`
   * ({@link PARROT_CHECKPOINT_PREFIX}, a full Parrot checkpoint or a shard holding the MoE) when the file
   * has names under it, and none when it holds the MoE's own names (a file written from
   * {@link ParrotMoE.stateDict} with no prefix). Only names under the prefix are decoded
   * (F32/F16/BF16 → float32). For sharded checkpoints on Node use core's
   * `loadShardedCheckpoint(dir, { filter })` and `moe.loadStateDict(tensors, { prefix })`.
   */
  loadSafetensors(bytes: Uint8Array, options: LoadStateDictOptions = {}): LoadStateDictResult {
    this.assertUsable();
    const names = [...readSafetensorsHeader(bytes).tensors.keys()];
    const own = this.namedParameters().map(([name]) => name);
    const prefix =
      options.prefix ??
      (!names.some((name) => name.startsWith(PARROT_CHECKPOINT_PREFIX)) && own.some((name) => names.includes(name))
        ? ''
        : PARROT_CHECKPOINT_PREFIX);
    const { tensors } = loadSafetensors(bytes, { filter: (name) => name.startsWith(prefix) });
    try {
      if (tensors.size === 0 && (options.strict ?? true)) {
        // Nothing decoded, so loadStateDict could not see the names the file has: say which prefix fits.
        const suggested = suggestStateDictPrefix(own, names, prefix);
        throw new StateDictError(this.name, own.map((name) => prefix + name), [], [], [], suggested);
      }
      return this.loadStateDict(tensors, { ...options, prefix });
    } finally {
      disposeTensorMap(tensors);
    }
  }
}
tf.serialization.registerClass(ParrotMoE, 'mllm');
