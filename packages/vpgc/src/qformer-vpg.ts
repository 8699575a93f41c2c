/**
 * BLIP-2-style visual prompt generator (VPG) for the host MLLM: implements the host's
 * `VisualProjector` contract, replacing the plain projector.
 *
 *   X = LayerNorm₁e-5(F)                         ln_vision (Cheetah `encode_img`), F [n, Nv, Dv]
 *   O = QFormer(query_tokens, X)                 [n, Nq, Dq]
 *   V = O·W_lpᵀ + b_lp                           llama_proj, [n, Nq, H]  → spliced as image tokens
 *
 * Parameter names are the reference's top-level names: `ln_vision.{weight,bias}`,
 * `Qformer.bert.…`, `query_tokens` `[1, Nq, Dq]`, `llama_proj.{weight,bias}`.
 * `lnVision: false` drops `ln_vision` for features that are already normalised.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, Linear, LayerNorm, normalInit, assertBoolean, assertPositiveInt, assertTensor, checkedOptions, type ModuleArgs } from '@mllm/core';
import { QFormer } from './qformer.js';
import type { QFormerConfig } from './qformer-config.js';

export interface QFormerVPGArgs extends ModuleArgs {
  /** Q-Former sizes (BLIP-2 defaults; `encoderWidth` = vision feature width `Dv`). */
  qformer?: Partial<QFormerConfig>;
  /** Number of learned queries `Nq` = image tokens per image (32). */
  numQueryTokens?: number;
  /** LLM hidden width `H` (llama_proj output). */
  llmHiddenSize: number;
  /** Apply `ln_vision` (LayerNorm, eps 1e-5) to the features first, as the reference (default true). */
  lnVision?: boolean;
  /** `ln_vision` epsilon (1e-5). */
  lnVisionEps?: number;
  /** Keep the Q-Former's dropout on in `forward` at inference, like the reference (default false). */
  dropoutAtInference?: boolean;
}

export class QFormerVPG extends Module {
  static readonly className = 'QFormerVPG';
  readonly numQueryTokens: number;
  readonly llmHiddenSize: number;
  readonly useLnVision: boolean;
  readonly lnVisionEps: number;
  readonly lnVision: LayerNorm | null;
  readonly qformer: QFormer;
  readonly llamaProj: Linear;
  private queryTokens!: tfl.LayerVariable;
  /**
   * Reference behaviour: `forward`/`encode` (Cheetah's `encode_img`) keep the Q-Former's dropout on
   * even when not training, as the reference never calls `.eval()` (default false). A `VPGC` built
   * on this VPG reads and sets this same switch, so one setting covers both of its Q-Former passes.
   */
  dropoutAtInference: boolean;
  /** Dropout mode of `forward` (explicit, default false). The reference never calls `.eval()`. */
  get training(): boolean {
    return this.qformer.training;
  }
  set training(value: boolean) {
    this.qformer.training = value;
  }

  constructor(args: QFormerVPGArgs) {
    super(checkedOptions('QFormerVPG', args, ['qformer', 'numQueryTokens', 'llmHiddenSize', 'lnVision', 'lnVisionEps', 'dropoutAtInference']));
    this.numQueryTokens = args.numQueryTokens ?? 32;
    assertPositiveInt('QFormerVPG', 'numQueryTokens', this.numQueryTokens);
    assertPositiveInt('QFormerVPG', 'llmHiddenSize', args.llmHiddenSize);
    this.llmHiddenSize = args.llmHiddenSize;
    this.useLnVision = args.lnVision ?? true;
    assertBoolean('QFormerVPG', 'lnVision', this.useLnVision);
    this.lnVisionEps = args.lnVisionEps ?? 1e-5;
    this.dropoutAtInference = args.dropoutAtInference ?? false;
    assertBoolean('QFormerVPG', 'dropoutAtInference', this.dropoutAtInference);
    const qformer = new QFormer({ config: args.qformer });
    this.lnVision = this.useLnVision
      ? this.addModule('ln_vision', new LayerNorm({ dim: qformer.config.encoderWidth, eps: this.lnVisionEps }))
      : null;
    this.qformer = this.addModule('Qformer', qformer);
    this.queryTokens = this.addParameter('query_tokens', [1, this.numQueryTokens, qformer.config.hiddenSize], normalInit(0.02));
    this.llamaProj = this.addModule('llama_proj', new Linear({ inFeatures: qformer.config.hiddenSize, outFeatures: this.llmHiddenSize }));
    this.built = true;
  }

  /** Vision feature width `Dv`. */
  get visionWidth(): number {
    return this.qformer.config.encoderWidth;
  }
  /** Q-Former width `Dq`. */
  get qformerWidth(): number {
    return this.qformer.config.hiddenSize;
  }
  /** The learned queries `[1, Nq, Dq]` (the variable's value; do not dispose). */
  get queryTokensValue(): tf.Tensor3D {
    return this.queryTokens.read() as tf.Tensor3D;
  }

  /** features `[n, Nv, Dv]` → what the Q-Former cross-attends to (`ln_vision` output), `[n, Nv, Dv]`. */
  normalizeFeatures(features: tf.Tensor3D): tf.Tensor3D {
    this.assertUsable();
    if (features.rank !== 3 || features.shape[2] !== this.visionWidth) {
      throw new Error(`QFormerVPG: features must be [numImages, Nv, ${this.visionWidth}], got [${features.shape}]`);
    }
    return this.lnVision ? (this.lnVision.forward(features) as tf.Tensor3D) : features.clone();
  }

  /** Whether `forward`/`encode` use dropout: `training || dropoutAtInference`. */
  get dropoutActive(): boolean {
    return this.training || this.dropoutAtInference;
  }

  /** features `[n, Nv, Dv]` → Q-Former output `[n, Nq, Dq]`; dropout per `options.training`, default `dropoutActive`. */
  encode(features: tf.Tensor3D, options: { training?: boolean } = {}): tf.Tensor3D {
    assertTensor('QFormerVPG.encode', 'features', features, { rank: 3, dtypes: ['float32'] });
    const training = options.training ?? this.dropoutActive;
    return tf.tidy(() => this.qformer.forward(this.queryTokensValue, this.normalizeFeatures(features), { training }));
  }

  /** `VisualProjector`: features `[n, Nv, Dv]` → image tokens `[n, Nq, H]`. */
  forward(features: tf.Tensor3D): tf.Tensor3D {
    assertTensor('QFormerVPG.forward', 'features', features, { rank: 3, dtypes: ['float32'] });
    return tf.tidy(() => this.llamaProj.forward(this.encode(features)) as tf.Tensor3D);
  }

  /** Cross-attention mass of the VPG's own queries per image token: features `[n, Nv, Dv]` → `[n, Nv]`. */
  crossAttentionMap(features: tf.Tensor3D): tf.Tensor2D {
    return tf.tidy(() => this.qformer.crossAttentionMap(this.queryTokensValue, this.normalizeFeatures(features)));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D));
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [inputShape[0], this.numQueryTokens, this.llmHiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      qformer: { ...this.qformer.config },
      numQueryTokens: this.numQueryTokens,
      llmHiddenSize: this.llmHiddenSize,
      lnVision: this.useLnVision,
      lnVisionEps: this.lnVisionEps,
      dropoutAtInference: this.dropoutAtInference,
    };
  }
}
tf.serialization.registerClass(QFormerVPG, 'mllm');
