/**
 * Linear layer, PyTorch semantics: `y = x·Wᵀ + b` with `W` `[out, in]` in state dicts
 * (stored `[in, out]` inside; see module.ts) and default init U(±1/√in) for W and b.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs } from './module.js';
import { uniformInit, type InitFn } from './initializers.js';
import { linearForward } from '../ops/matmul.js';
import { checkedOptions, describeValue } from '../validate.js';

export interface LinearArgs extends ModuleArgs {
  inFeatures: number;
  outFeatures: number;
  /** Add a bias (default true). */
  bias?: boolean;
  /** Weight init (internal `[in, out]` shape); default U(±1/√inFeatures). */
  weightInit?: InitFn;
  /** Bias init; default U(±1/√inFeatures). */
  biasInit?: InitFn;
}

export function assertPositiveInt(owner: string, name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new Error(`${owner}: ${name} must be a positive integer, got ${describeValue(value)}`);
  }
}

export class Linear extends Module {
  static readonly className = 'Linear';
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly useBias: boolean;
  private kernel!: tfl.LayerVariable;
  private biasVariable: tfl.LayerVariable | null = null;
  private readonly weightInit: InitFn;
  private readonly biasInit: InitFn;

  constructor(args: LinearArgs) {
    super(checkedOptions('Linear', args, ['inFeatures', 'outFeatures', 'bias', 'weightInit', 'biasInit']));
    assertPositiveInt('Linear', 'inFeatures', args.inFeatures);
    assertPositiveInt('Linear', 'outFeatures', args.outFeatures);
    this.inFeatures = args.inFeatures;
    this.outFeatures = args.outFeatures;
    this.useBias = args.bias ?? true;
    const bound = 1 / Math.sqrt(this.inFeatures);
    this.weightInit = args.weightInit ?? uniformInit(bound);
    this.biasInit = args.biasInit ?? uniformInit(bound);
    this.build([null, this.inFeatures]);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (this.built) return;
    this.kernel = this.addParameter('weight', [this.outFeatures, this.inFeatures], this.weightInit, { layout: 'linear' });
    if (this.useBias) this.biasVariable = this.addParameter('bias', [this.outFeatures], this.biasInit);
    super.build(inputShape);
  }

  /** `x [..., in] → [..., out]`. */
  forward(x: tf.Tensor): tf.Tensor {
    this.assertUsable();
    return linearForward(x, this.kernel.read() as tf.Tensor2D, this.biasVariable?.read() as tf.Tensor1D | undefined);
  }

  /** The kernel in the internal `[in, out]` layout (for fused/stacked ops). */
  get kernelValue(): tf.Tensor2D {
    return this.kernel.read() as tf.Tensor2D;
  }

  /** The bias, or null. */
  get biasValue(): tf.Tensor1D | null {
    return (this.biasVariable?.read() as tf.Tensor1D | undefined) ?? null;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(Array.isArray(inputs) ? inputs[0] : inputs));
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape.slice(0, -1), this.outFeatures];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), inFeatures: this.inFeatures, outFeatures: this.outFeatures, bias: this.useBias };
  }
}
tf.serialization.registerClass(Linear, 'mllm');
