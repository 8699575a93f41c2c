import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  Linear,
  Module,
  disposeStateDict,
  loadSafetensors,
  loadStateDict,
  saveSafetensors,
  setSeed,
  stateDict,
  StateDictError,
  suggestStateDictPrefix,
  toStateDict,
} from '../index.js';
import { expectNoLeaks } from '../testing/index.js';

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
  /** `x [B, in] → [B, out]`. */
  forward(x: tf.Tensor): tf.Tensor {
    return this.fc2.forward(tf.relu(this.fc1.forward(x)));
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

/** `[name, values]` of a dict, in key order (what two loads are compared by). */
const dictValues = (dict: Map<string, tf.Tensor>) => [...dict].map(([name, t]) => [name, t.shape, Array.from(t.dataSync())]);

/** A TinyMlp with seeded weights (different seeds, different weights). */
function trained(seed: number): TinyMlp {
  setSeed(seed);
  return new TinyMlp(3, 4, 2);
}

describe('Module.stateDict / Module.loadStateDict', () => {
  it('round-trip through safetensors into a fresh instance: identical outputs, with and without a prefix', () => {
    const source = trained(11);
    const x = tf.tensor2d([[0.5, -1, 2], [1.5, 0.25, -0.75]]);
    const expected = source.forward(x);
    for (const prefix of ['', 'model.mlp.']) {
      const dict = source.stateDict(prefix);
      // The method is the free function: same names, same values.
      const viaFunction = stateDict(source, prefix);
      expect(dictValues(dict)).toEqual(dictValues(viaFunction));
      const bytes = saveSafetensors(dict);
      disposeStateDict(dict);
      disposeStateDict(viaFunction);
      const fresh = trained(12);
      const before = fresh.forward(x);
      expect(Array.from(before.dataSync())).not.toEqual(Array.from(expected.dataSync()));
      const { tensors } = loadSafetensors(bytes);
      expectNoLeaks(() => {
        const result = fresh.loadStateDict(tensors, { prefix });
        expect(result.loadedKeys).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'].map((k) => prefix + k));
      });
      const after = fresh.forward(x);
      expect(Array.from(after.dataSync())).toEqual(Array.from(expected.dataSync()));
      tf.dispose([before, after, ...tensors.values()]);
      fresh.dispose();
    }
    tf.dispose([x, expected]);
    source.dispose();
  });

  it('refuses a disposed module', () => {
    const model = trained(1);
    model.dispose();
    expect(() => model.stateDict()).toThrow(/is disposed/);
    expect(() => model.loadStateDict(new Map())).toThrow(/is disposed/);
  });
});

describe('state dict inputs: Map, iterable pairs, NamedTensorMap', () => {
  it('every accepted form loads the same weights (method and function)', () => {
    const source = trained(21);
    const reference = source.stateDict();
    const forms: Array<[string, () => unknown]> = [
      ['Map', () => new Map(reference)],
      ['array of pairs', () => [...reference]],
      ['generator of pairs', () => (function* () { yield* reference; })()],
      ['NamedTensorMap', () => Object.fromEntries(reference)],
      ['null-prototype NamedTensorMap', () => Object.assign(Object.create(null) as object, Object.fromEntries(reference))],
    ];
    for (const [label, make] of forms) {
      for (const load of [
        (m: TinyMlp, d: unknown) => m.loadStateDict(d as tf.NamedTensorMap),
        (m: TinyMlp, d: unknown) => loadStateDict(m, d as tf.NamedTensorMap),
      ]) {
        const target = trained(22);
        expectNoLeaks(() => load(target, make()));
        const back = target.stateDict();
        expect(dictValues(back), label).toEqual(dictValues(reference));
        disposeStateDict(back);
        target.dispose();
      }
    }
    // A NamedTensorMap whose key is `__proto__` is an ordinary (unexpected) key, not a prototype.
    const withProto = JSON.parse('{"__proto__": 1}') as Record<string, unknown>;
    expect([...toStateDict(withProto as tf.NamedTensorMap).keys()]).toEqual(['__proto__']);
    disposeStateDict(reference);
    source.dispose();
  });

  it('anything else: a TypeError naming the argument, the accepted forms and what was given; nothing assigned', () => {
    const model = trained(31);
    const before = params(model);
    const weight = tf.ones([4, 3]);
    const accepted = /dict: expected a Map<string, tf\.Tensor>, an iterable of \[name, tensor\] pairs or a plain object of tensors \(NamedTensorMap\)/;
    const cases: Array<[unknown, RegExp]> = [
      ['fc1.weight', /, got a string$/],
      [weight, /, got a tf\.Tensor of shape \[4,3\]$/],
      [42, /, got number$/],
      [null, /, got null$/],
      [undefined, /, got undefined$/],
      [new Date(0), /, got an instance of Date$/],
      [[weight], /; entry 0 is not a \[name, tensor\] pair$/],
      [[['fc1.weight', weight], ['fc1.bias']], /; entry 1 is not a \[name, tensor\] pair$/],
      [new Set([weight]), /; entry 0 is not a \[name, tensor\] pair$/],
    ];
    for (const [value, given] of cases) {
      for (const load of [() => model.loadStateDict(value as tf.NamedTensorMap), () => loadStateDict(model, value as tf.NamedTensorMap)]) {
        const error = (() => { try { load(); } catch (e) { return e as Error; } })();
        expect(error).toBeInstanceOf(TypeError);
        expect(error!.message).toMatch(accepted);
        expect(error!.message).toMatch(given);
      }
    }
    expect(() => loadStateDict(model, new Map(), { prefix: 3 as unknown as string })).toThrow(/options\.prefix: expected a string, got number/);
    expect(params(model)).toEqual(before);
    weight.dispose();
    model.dispose();
  });
});

describe('a missing-keys error says which prefix to pass', () => {
  const errorOf = (fn: () => unknown) => { try { fn(); } catch (e) { return e as StateDictError; } throw new Error('did not throw'); };

  it('keys saved with a prefix, loaded without one (and the reverse); the suggested prefix loads', () => {
    const source = trained(41);
    const target = trained(42);
    const prefixed = source.stateDict('model.moe_model.');
    const error = errorOf(() => target.loadStateDict(prefixed));
    expect(error).toBeInstanceOf(StateDictError);
    expect(error.suggestedPrefix).toBe('model.moe_model.');
    expect(error.message).toContain("all 4 missing keys appear with the prefix 'model.moe_model.': pass { prefix: 'model.moe_model.' }");
    target.loadStateDict(prefixed, { prefix: error.suggestedPrefix });

    const plain = source.stateDict();
    const reverse = errorOf(() => target.loadStateDict(plain, { prefix: 'model.moe_model.' }));
    expect(reverse.suggestedPrefix).toBe('');
    expect(reverse.message).toContain("all 4 missing keys appear without a prefix: pass { prefix: '' }");
    // Keys that are nowhere in the dict: no suggestion.
    const layered = source.stateDict('layers.0.');
    const partial = errorOf(() => target.loadStateDict(new Map([...layered].filter(([k]) => !k.startsWith('layers.0.fc1.'))), { prefix: 'layers.0.' }));
    expect(partial.missingKeys).toEqual(['layers.0.fc1.weight', 'layers.0.fc1.bias']);
    expect(partial.suggestedPrefix).toBeUndefined();
    expect(partial.message).not.toContain('pass {');
    // Only the prefix under which every missing key appears: `x.bias` alone would suggest 'x.'.
    const w = plain.get('fc2.weight')!;
    const bias = plain.get('fc2.bias')!;
    const both = errorOf(() => target.fc2.loadStateDict(new Map([['fc2.weight', w], ['fc2.bias', bias], ['x.bias', bias]])));
    expect(both.suggestedPrefix).toBe('fc2.');
    expect(both.message).toContain("all 2 missing keys appear with the prefix 'fc2.': pass { prefix: 'fc2.' }");
    const justOne = errorOf(() => target.fc2.loadStateDict(new Map([['weight', w], ['x.bias', bias]])));
    expect(justOne.missingKeys).toEqual(['bias']);
    expect(justOne.message).toContain("the missing key appears with the prefix 'x.': pass { prefix: 'x.' }");
    // Non-strict loading reports no error, so no suggestion either.
    expect(target.fc2.loadStateDict(new Map([['weight', w]]), { strict: false }).missingKeys).toEqual(['bias']);
    const probe = tf.ones([1, 3]);
    const [got, want] = [target.forward(probe), source.forward(probe)];
    expect(Array.from(got.dataSync())).toEqual(Array.from(want.dataSync()));
    tf.dispose([probe, got, want, ...prefixed.values(), ...plain.values(), ...layered.values()]);
    source.dispose();
    target.dispose();
  });
  it('suggests nothing when the keys are not all under one prefix, or a prefix ends mid-name', () => {
    expect(suggestStateDictPrefix(['a.w', 'b.w'], ['p.a.w', 'q.b.w'])).toBeUndefined();
    expect(suggestStateDictPrefix(['a.w'], ['pa.w'])).toBeUndefined();
    expect(suggestStateDictPrefix(['a.w'], ['a.w'])).toBeUndefined(); // '' is the prefix already in use
    expect(suggestStateDictPrefix(['a.w', 'b.w'], new Map([['p.a.w', 0], ['p.b.w', 0]]))).toBe('p.');
    expect(suggestStateDictPrefix(['a.w'], ['m.p.a.w', 'p.a.w'], 'x.')).toBe('m.p.'); // deterministic: the longest
    expect(suggestStateDictPrefix([], ['p.a.w'])).toBeUndefined();
  });
});
