import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, loadStateDict, setSeed, StateDictError } from '../index.js';

/** Parameters `fc1.weight [4, 3]`, `fc1.bias`, `fc2.weight [2, 4]`, `fc2.bias` (the trainer tests' TinyMlp lives in @mllm/train). */
class TinyMlp extends Module {
  static readonly className = 'StateDictTestMlp';
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(inFeatures: number, hidden: number, outFeatures: number) {
    super({});
    this.fc1 = this.addModule('fc1', new Linear({ inFeatures, outFeatures: hidden }));
    this.fc2 = this.addModule('fc2', new Linear({ inFeatures: hidden, outFeatures }));
  }
}

const params = (model: TinyMlp) => model.namedParameters().map(([name, p]) => [name, Array.from(p.variable.read().dataSync())]);

describe('loadStateDict is all-or-nothing', () => {
  it('a disposed, string, complex or non-tensor value at a later key: nothing assigned, every problem named', () => {
    setSeed(3);
    const model = new TinyMlp(3, 4, 2);
    const before = params(model);
    const disposed = tf.zeros([2]);
    disposed.dispose();
    // The first keys are valid and would be assigned first by a check-as-you-go loader.
    const good = () => [['fc1.weight', tf.ones([4, 3])], ['fc1.bias', tf.ones([4])], ['fc2.weight', tf.ones([2, 4])]] as Array<[string, tf.Tensor]>;
    const cases: Array<[tf.Tensor | unknown, RegExp]> = [
      [disposed, /invalid value for fc2\.bias: the tensor is disposed/],
      [tf.tensor1d(['a', 'b'], 'string'), /invalid value for fc2\.bias: expected dtype float32, int32 or bool, got string/],
      [[1, 2], /invalid value for fc2\.bias: expected a tf\.Tensor, got a plain array/],
      [null, /invalid value for fc2\.bias: expected a tf\.Tensor, got null/],
    ];
    // complex64 exists only on the cpu backend (wasm and webgpu have no Complex kernel)
    if (tf.getBackend() === 'cpu') cases.push([tf.complex([1, 2], [3, 4]), /invalid value for fc2\.bias: expected dtype float32, int32 or bool, got complex64/]);
    for (const [value, message] of cases) {
      const dict = new Map<string, tf.Tensor>([...good(), ['fc2.bias', value as tf.Tensor]]);
      const tensorsBefore = tf.memory().numTensors;
      expect(() => loadStateDict(model, dict)).toThrow(StateDictError);
      expect(() => loadStateDict(model, dict)).toThrow(message);
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      expect(params(model)).toEqual(before);
      tf.dispose([...dict.values()].filter((t) => t instanceof tf.Tensor && !t.isDisposed));
    }
    // Several problems at once are all reported.
    const many = new Map<string, tf.Tensor>([['fc1.weight', disposed], ['fc1.bias', tf.zeros([5])], ['fc2.weight', tf.ones([2, 4])]]);
    const error = (() => { try { loadStateDict(model, many); } catch (e) { return e as StateDictError; } })()!;
    expect(error.invalidKeys).toEqual([{ key: 'fc1.weight', problem: 'the tensor is disposed' }]);
    expect(error.mismatchedKeys.map((m) => m.key)).toEqual(['fc1.bias']);
    expect(error.missingKeys).toEqual(['fc2.bias']);
    expect(params(model)).toEqual(before);
    tf.dispose([many.get('fc1.bias')!, many.get('fc2.weight')!]);
    // int32 and bool values load (cast to float32).
    const ints = new Map<string, tf.Tensor>([...good(), ['fc2.bias', tf.tensor1d([1, 2], 'int32')]]);
    loadStateDict(model, ints);
    expect(Array.from(model.fc2.namedParameters().find(([n]) => n === 'bias')![1].variable.read().dataSync())).toEqual([1, 2]);
    tf.dispose([...ints.values()]);
    model.dispose();
  });
});
