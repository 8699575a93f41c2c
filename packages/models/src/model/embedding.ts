/** Token embedding table (PyTorch `nn.Embedding`): param `weight` `[V, D]`; `ids [...] → [..., D]`. */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, normalInit, type InitFn, assertPositiveInt, gatherRows } from '@mllm/core';

export interface EmbeddingArgs extends ModuleArgs {
  numEmbeddings: number;
  embeddingDim: number;
  /** Default N(0, 0.02²) (HF LLaMA/Qwen2 `initializer_range`). */
  init?: InitFn;
}

export class Embedding extends Module {
  static readonly className = 'Embedding';
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  private weight!: tfl.LayerVariable;
  private readonly init: InitFn;

  constructor(args: EmbeddingArgs) {
    super(args);
    assertPositiveInt('Embedding', 'numEmbeddings', args.numEmbeddings);
    assertPositiveInt('Embedding', 'embeddingDim', args.embeddingDim);
    this.numEmbeddings = args.numEmbeddings;
    this.embeddingDim = args.embeddingDim;
    this.init = args.init ?? normalInit(0.02);
    this.build([null]);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (this.built) return;
    this.weight = this.addParameter('weight', [this.numEmbeddings, this.embeddingDim], this.init);
    super.build(inputShape);
  }

  /** The table `[V, D]`. */
  get weightValue(): tf.Tensor2D {
    return this.weight.read() as tf.Tensor2D;
  }

  /** `ids [...] int32 → [..., D]` (ids must lie in [0, V); checked). */
  forward(ids: tf.Tensor): tf.Tensor {
    this.assertUsable();
    const flat = Int32Array.from(ids.dataSync()); // [N] host-side indices
    return tf.tidy(() => {
      const rows = gatherRows(this.weight.read() as tf.Tensor2D, flat); // [N, D]
      return tf.reshape(rows, [...ids.shape, this.embeddingDim]); // [..., D]
    });
  }

  /** Like `forward` from plain ids (no tensor round trip): `ids [N] → [N, D]`. */
  lookup(ids: Int32Array | number[]): tf.Tensor2D {
    this.assertUsable();
    return gatherRows(this.weight.read() as tf.Tensor2D, ids);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(Array.isArray(inputs) ? inputs[0] : inputs));
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape, this.embeddingDim];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), numEmbeddings: this.numEmbeddings, embeddingDim: this.embeddingDim };
  }
}
tf.serialization.registerClass(Embedding, 'mllm');
