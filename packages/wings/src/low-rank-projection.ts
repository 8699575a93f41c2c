/**
 * A bias-free two-factor linear map `y = (x·Aᵀ)·Bᵀ`, stored like PyTorch's
 * `nn.Sequential(nn.Linear(in, r, bias=False), nn.Linear(r, out, bias=False))`: the
 * down-projection `A` is child `0` (`0.weight`, `[r, in]`), the up-projection `B` is child `1`
 * (`1.weight`, `[out, r]`). The rank-r intermediate is always formed first, so the cost is
 * `2·M·r·(in + out)` FLOPs, never `2·M·in·out`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Linear, Module, assertFiniteNumber, assertPositiveInt, checkedOptions, linearForward, normalInit, zerosInit, type ModuleArgs } from '@mllm/core';

export interface LowRankProjectionArgs extends ModuleArgs {
  inFeatures: number;
  outFeatures: number;
  rank: number;
  /** Standard deviation of the down-projection's normal init (Wings: 0.02). The up-projection starts at zero. */
  initStd?: number;
}

export class LowRankProjection extends Module {
  static readonly className = 'LowRankProjection';
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly rank: number;
  readonly initStd: number;
  /** `A`, reference `[r, in]` (child `0`). */
  readonly down: Linear;
  /** `B`, reference `[out, r]` (child `1`), zero at init. */
  readonly up: Linear;

  constructor(args: LowRankProjectionArgs) {
    super(checkedOptions('LowRankProjection', args, ['inFeatures', 'outFeatures', 'rank', 'initStd']));
    assertPositiveInt('LowRankProjection', 'inFeatures', args.inFeatures);
    assertPositiveInt('LowRankProjection', 'outFeatures', args.outFeatures);
    assertPositiveInt('LowRankProjection', 'rank', args.rank);
    this.inFeatures = args.inFeatures;
    this.outFeatures = args.outFeatures;
    this.rank = args.rank;
    this.initStd = args.initStd ?? 0.02;
    assertFiniteNumber('LowRankProjection', 'initStd', this.initStd);
    // PyTorch's trunc_normal_(std=0.02) cuts at ±2 in absolute value, i.e. at 100σ: a plain normal.
    this.down = this.addModule('0', new Linear({ inFeatures: this.inFeatures, outFeatures: this.rank, bias: false, weightInit: normalInit(this.initStd) }));
    this.up = this.addModule('1', new Linear({ inFeatures: this.rank, outFeatures: this.outFeatures, bias: false, weightInit: zerosInit }));
    this.built = true;
  }

  /** `x [..., in] → (x·Aᵀ)·Bᵀ [..., out]` (two plain 2-D matMuls on flattened leading dims). */
  forward(x: tf.Tensor): tf.Tensor {
    this.assertUsable();
    return tf.tidy(() => linearForward(linearForward(x, this.down.kernelValue), this.up.kernelValue));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(Array.isArray(inputs) ? inputs[0] : inputs));
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape.slice(0, -1), this.outFeatures];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), inFeatures: this.inFeatures, outFeatures: this.outFeatures, rank: this.rank, initStd: this.initStd };
  }
}
tf.serialization.registerClass(LowRankProjection, 'mllm');
