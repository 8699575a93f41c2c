/**
 * Decoder-only host LM (LLaMA/Qwen2 anatomy) with named hook points.
 * Parameter names: `model.embed_tokens.weight`, `model.layers.{i}.…`, `model.norm.weight`,
 * `lm_head.weight` (absent when `tieEmbeddings`: logits = h·Eᵀ).
 *
 *   h_0 = inputEmbeddings                      [B, L, H]
 *   h_{ℓ+1} = DecoderLayer_ℓ(h_ℓ)  (hooks)     [B, L, H]
 *   logits = lm_head(norm(h_N))                [B, L, V]
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { assertBinaryMask, assertOptionsObject, assertTensor, type BaseModelShape, type DecoderHooks, type ForwardContext, type HookHandle, Linear, matMul2d, Module, type ModuleArgs, RMSNorm } from '@mllm/core';
import { Embedding } from './embedding.js';
import { DecoderLayer, type LayerCache } from './decoder-layer.js';
import { AttachedHooks } from './attached-hooks.js';
import { resolveHostConfig, type HostConfig, type ResolvedHostConfig } from './config.js';
import { causalPaddingMask, planSequence } from './sequence.js';
import { contextFromPlan } from './context.js';

export interface DecoderRunInputs {
  /** `[B, Lq, H]` layer-0 input. */
  inputEmbeddings: tf.Tensor3D;
  /** `[B, Lq]` int32 positions. */
  positions: tf.Tensor2D;
  /** Broadcastable to `[B, heads, Lq, Lk]`, nonzero = attend. */
  mask: tf.Tensor;
  ctx: ForwardContext;
  /** Per-layer caches of earlier positions (decode steps). */
  past?: LayerCache[] | null;
  /** Return per-layer keys/values (for the next decode step). */
  collectCache?: boolean;
}

export interface DecoderRunOutputs {
  /** `[B, Lq, V]` */
  logits: tf.Tensor3D;
  present: LayerCache[] | null;
}

export interface HostLMArgs extends ModuleArgs {
  config: HostConfig;
}

/** The constructor's options must be an object with a `config` (checked before `super` sees them). */
function checkedHostArgs(args: HostLMArgs): HostLMArgs {
  assertOptionsObject('HostLM', 'args', args);
  assertOptionsObject('HostLM', 'args.config', args.config);
  return args;
}

export class HostLM extends Module {
  static readonly className: string = 'HostLM';
  readonly textConfig: ResolvedHostConfig;
  readonly embedTokens: Embedding;
  readonly layers: DecoderLayer[];
  readonly finalNorm: RMSNorm;
  readonly lmHead: Linear | null;
  private readonly attachedHooks = new AttachedHooks({
    owner: 'addHooks',
    numLayers: () => this.layers.length,
    addChild: (name, module) => void this.addModule(name, module),
    removeChild: (name) => void this.removeModule(name),
  });

  constructor(args: HostLMArgs) {
    super(checkedHostArgs(args));
    const c = (this.textConfig = resolveHostConfig(args.config));
    this.embedTokens = this.addModule('model.embed_tokens', new Embedding({ numEmbeddings: c.vocabSize, embeddingDim: c.hiddenSize }));
    this.layers = [];
    for (let i = 0; i < c.numLayers; i++) {
      this.layers.push(this.addModule(`model.layers.${i}`, new DecoderLayer({
        hiddenSize: c.hiddenSize, numHeads: c.numHeads, intermediateSize: c.intermediateSize,
        ropeTheta: c.ropeTheta, rmsEps: c.rmsEps, qkvBias: c.qkvBias,
      })));
    }
    this.finalNorm = this.addModule('model.norm', new RMSNorm({ dim: c.hiddenSize, eps: c.rmsEps }));
    this.lmHead = c.tieEmbeddings
      ? null
      : this.addModule('lm_head', new Linear({ inFeatures: c.hiddenSize, outFeatures: c.vocabSize, bias: false }));
    this.built = true;
  }

  /** Attached hooks in attach order. */
  get hooks(): DecoderHooks[] {
    return this.attachedHooks.hooks;
  }

  /**
   * Attach hooks (run after those attached earlier). Their modules become children of this model
   * (visible to `namedParameters`, `trainableVariables`, state dicts, `dispose`) until `remove()`.
   */
  addHooks(hooks: DecoderHooks): HookHandle {
    this.assertUsable();
    return this.attachedHooks.add(hooks);
  }


  /** Freeze every parameter except those of attached hooks' modules (`ModuleHost.freezeBase`). */
  freezeBase(): void {
    this.attachedHooks.freezeBase(this);
  }

  /** The base model's shape in HF names (what adapters record and check; see `ModuleHost`). */
  baseModelShape(): BaseModelShape {
    const c = this.textConfig;
    return {
      model_type: 'mllm-host',
      hidden_size: c.hiddenSize,
      num_hidden_layers: c.numLayers,
      num_attention_heads: c.numHeads,
      num_key_value_heads: c.numHeads,
      rope_theta: c.ropeTheta,
      vocab_size: c.vocabSize,
    };
  }

  /** Child names of the attached hooks' modules (their parameters are `<name>.<param>`). */
  get hookModuleNames(): string[] {
    return this.attachedHooks.moduleNames;
  }

  /** True when some attached hook cannot run on cached decode steps. */
  get requiresFullSequence(): boolean {
    return this.hooks.some((h) => h.requiresFullSequence);
  }

  /** `ids [B, L] → [B, L, H]` embedding-table rows. */
  embed(ids: tf.Tensor): tf.Tensor3D {
    return this.embedTokens.forward(ids) as tf.Tensor3D;
  }

  /** Plain ids (row-major `[B·L]`) → `[B, L, H]` embedding-table rows. */
  embedIds(ids: Int32Array | number[], B: number, L: number): tf.Tensor3D {
    if (ids.length !== B * L) throw new Error(`HostLM.embedIds: ids must have B·L = ${B * L} entries, got ${ids.length}`);
    return tf.tidy(() => tf.reshape(this.embedTokens.lookup(ids), [B, L, this.textConfig.hiddenSize]) as tf.Tensor3D); // [B, L, H]
  }

  /** `hidden [B, L, H] → logits [B, L, V]` (after the final norm). */
  logitsFromHidden(hidden: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, L, H] = hidden.shape;
      const normed = tf.reshape(this.finalNorm.forward(hidden), [B * L, H]) as tf.Tensor2D; // [B·L, H]
      const logits = this.lmHead
        ? this.lmHead.forward(normed) // [B·L, V]
        : matMul2d(normed, tf.transpose(this.embedTokens.weightValue)); // [B·L, H]·[H, V]
      return tf.reshape(logits, [B, L, this.textConfig.vocabSize]) as tf.Tensor3D; // [B, L, V]
    });
  }

  /** Run all layers with the attached hooks, then the head. */
  runDecoder(inputs: DecoderRunInputs): DecoderRunOutputs {
    this.assertUsable();
    const H = this.textConfig.hiddenSize;
    const { inputEmbeddings, ctx } = inputs;
    if (inputEmbeddings.rank !== 3 || inputEmbeddings.shape[2] !== H) {
      throw new Error(`HostLM: inputEmbeddings must be [B, L, ${H}], got [${inputEmbeddings.shape}]`);
    }
    if (inputs.past && inputs.past.length !== this.layers.length) {
      throw new Error(`HostLM: past must hold ${this.layers.length} layer caches, got ${inputs.past.length}`);
    }
    const hooks = this.attachedHooks;
    let finish = (): void => undefined;
    const run = (): { logits: tf.Tensor3D; present: Array<{ keys: tf.Tensor; values: tf.Tensor }> } => tf.tidy(() => {
      finish = hooks.prepare(ctx); // per-forward preparation (e.g. Wings' learner keys), once for all layers
      let h = inputEmbeddings;
      const present: Array<{ keys: tf.Tensor; values: tf.Tensor }> = [];
      this.layers.forEach((layer, index) => {
        h = hooks.beforeLayer(index, h, ctx);
        const result = layer.forward(h, {
          positions: inputs.positions,
          mask: inputs.mask,
          past: inputs.past?.[index] ?? null,
          returnProbs: hooks.needsAttentionProbs(index),
          afterAttention: hooks.afterAttention(index, ctx),
        });
        h = result.hidden;
        if (inputs.collectCache) present.push(result.present);
      });
      return { logits: this.logitsFromHidden(h), present };
    });
    let out: ReturnType<typeof run>;
    try {
      out = run();
    } finally {
      finish();
    }
    return { logits: out.logits as tf.Tensor3D, present: inputs.collectCache ? (out.present as LayerCache[]) : null };
  }

  /**
   * Text-only forward: `inputIds [B, L]` (right-padded) → logits `[B, L, V]`.
   * `attentionMask [B, L]` (1 = real) defaults to all ones. Hooks run with a text-only context.
   */
  forwardText(inputIds: tf.Tensor2D, attentionMask?: tf.Tensor2D): tf.Tensor3D {
    this.assertUsable();
    assertTensor('HostLM.forwardText', 'inputIds', inputIds, { rank: 2, dtypes: ['int32', 'float32'] });
    if (attentionMask != null) {
      assertTensor('HostLM.forwardText', 'attentionMask', attentionMask, { rank: 2 });
      assertBinaryMask('HostLM.forwardText', 'attentionMask', attentionMask);
    }
    const ids = inputIds.arraySync() as number[][];
    const mask = attentionMask ? (attentionMask.arraySync() as number[][]) : null;
    const plan = planSequence({ ids, imageTokenId: -1, padId: 0, tokensPerImage: 0 });
    if (mask) {
      // right padding: the given mask replaces the all-real default
      ids.forEach((row, b) => {
        const n = mask[b].reduce((count, v) => count + (v ? 1 : 0), 0);
        plan.lengths[b] = n;
        plan.lastPromptIndex[b] = Math.max(n - 1, 0);
        row.forEach((_, t) => {
          const real = t < n ? 1 : 0;
          plan.attentionMask[b * plan.length + t] = real;
          plan.textMask[b * plan.length + t] = real;
          plan.promptMask[b * plan.length + t] = real;
        });
      });
    }
    return tf.tidy(() => {
      const embeddings = this.embedIds(plan.textIds, plan.batchSize, plan.textLength); // [B, L, H]
      const ctx = contextFromPlan(plan, embeddings, null, null, true);
      return this.runDecoder({
        inputEmbeddings: embeddings,
        positions: ctx.positions,
        mask: causalPaddingMask(ctx.attentionMask),
        ctx,
      }).logits;
    });
  }

  /**
   * The supported API, named by the error of `call` / `getConfig`: a host is not a tfjs-layers layer
   * (attached modules and hooks are not in a tfjs config, and tfjs' format stores the internal layout).
   */
  protected layersApiHint(): string {
    return 'use forwardText(inputIds); save its stateDict() (reference layout, e.g. with saveSafetensors)';
  }

  /** Throws: a host is not a tfjs-layers layer (see {@link HostLM.layersApiHint}). */
  override call(): tf.Tensor {
    throw this.notALayer(this.layersApiHint());
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape, this.textConfig.vocabSize];
  }

  /** Throws, so `model.save` of a tfjs model containing a host fails naming the supported API. */
  override getConfig(): tf.serialization.ConfigDict {
    throw this.notALayer(this.layersApiHint());
  }
}
// Not registered with tf.serialization: see getConfig.
