/**
 * `Module`: a tfjs-layers `Layer` that also keeps its parameters under the reference
 * checkpoint's names (PyTorch style: `experts.0.gate_proj.weight`), recursively through child
 * modules. This is what lets @mllm load the authors' safetensors unchanged.
 *
 * Layout at the boundary vs inside: a parameter with `layout: 'linear'` is stored `[in, out]`
 * internally (a plain `matMul(x, W)` is ~10× faster than a transposed operand on wasm) and is
 * transposed to PyTorch's `[out, in]` only when written to / read from a state dict.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { InitFn } from './initializers.js';
// A cycle (state-dict.ts imports the layout helpers below), safe because neither side uses the
// other's exports while the modules are being evaluated, only inside function bodies.
import {
  loadStateDict,
  stateDict,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type StateDict,
  type StateDictInput,
} from '../io/state-dict.js';

type LayerVariable = tfl.LayerVariable;
/** What `Layer.dispose()` returns. */
export type DisposeResult = ReturnType<tfl.layers.Layer['dispose']>;

/** Base constructor arguments of every @mllm module (a subset of tfjs `LayerArgs`). */
export interface ModuleArgs {
  /** Layer name (tfjs makes a unique one from the class name when omitted). */
  name?: string;
  /** Start trainable (default true). */
  trainable?: boolean;
}

/** `plain`: same layout inside and in the reference. `linear`: internal `[in, out]`, reference `[out, in]`. */
export type ParameterLayout = 'plain' | 'linear';

export interface Parameter {
  /** The tfjs variable holding the value in the internal layout. */
  readonly variable: LayerVariable;
  readonly layout: ParameterLayout;
  /** Shape in the reference (PyTorch) layout. */
  readonly referenceShape: readonly number[];
}

export interface AddParameterOptions {
  layout?: ParameterLayout;
  trainable?: boolean;
}

/** Convert an internal-layout value to the reference layout (new tensor). */
export function toReferenceLayout(value: tf.Tensor, layout: ParameterLayout): tf.Tensor {
  return layout === 'linear' ? tf.transpose(value) : value.clone();
}

/** Convert a reference-layout value to the internal layout (new tensor). */
export function fromReferenceLayout(value: tf.Tensor, layout: ParameterLayout): tf.Tensor {
  return layout === 'linear' ? tf.transpose(value) : value.clone();
}

export abstract class Module extends tfl.layers.Layer {
  constructor(args: ModuleArgs = {}) {
    super(args);
  }

  private readonly localParameters = new Map<string, Parameter>();
  private readonly childModules = new Map<string, Module>();
  /** The module this one is registered in (by {@link Module.addModule}) and the name it has there. */
  private parentModule: { module: Module; name: string } | null = null;
  private disposedModule = false;

  /**
   * The name tfjs-layers saves a parameter under (`LayerVariable.originalName`, the key of
   * `model.save` / `loadLayersModel`): `<root layer name>.<reference name>`, e.g.
   * `swi_glu_SwiGLU1.gate_proj.weight` (what `stateDict(`${layer.name}.`)` would call it). The root is
   * the outermost module this one is registered in; its layer name is in the saved topology and the
   * reference names follow from the structure, so the names are unique in a model and the same after
   * deserialisation (a child's own auto-generated layer name is neither: it comes from a global
   * counter). Not tfjs' `layer/weight` with a `/`: `loadWeights` takes a model whose first key ends
   * in `/<integer>` for a Keras v3 file, and `nn.Sequential` children are named `0`, `1`, ...
   */
  private savedWeightName(referenceName: string): string {
    let path = referenceName;
    let root: Module = this;
    while (root.parentModule) {
      path = `${root.parentModule.name}.${path}`;
      root = root.parentModule.module;
    }
    return `${root.name}.${path}`;
  }

  /**
   * Create a parameter. `referenceShape` is the PyTorch shape (`[out, in]` for a Linear weight);
   * `init` receives the internal shape.
   */
  protected addParameter(
    name: string,
    referenceShape: number[],
    init: InitFn,
    options: AddParameterOptions = {},
  ): LayerVariable {
    const layout = options.layout ?? 'plain';
    if (this.localParameters.has(name) || this.childModules.has(name)) {
      throw new Error(`${this.name}: parameter name '${name}' is already used`);
    }
    if (layout === 'linear' && referenceShape.length !== 2) {
      throw new Error(`${this.name}: linear-layout parameter '${name}' must be 2-D, got [${referenceShape}]`);
    }
    const internalShape = layout === 'linear' ? [referenceShape[1], referenceShape[0]] : [...referenceShape];
    const variable = this.addWeight(name, internalShape, 'float32', tfl.initializers.zeros(), undefined, options.trainable ?? true);
    // tfjs names it by the bare `name` (every Linear's is `weight`: "Duplicate weight name" on save);
    // computed on read because the module may be registered in a parent after this.
    Object.defineProperty(variable, 'originalName', { get: () => this.savedWeightName(name), configurable: true });
    const initial = init(internalShape);
    variable.write(initial);
    initial.dispose();
    this.localParameters.set(name, { variable, layout, referenceShape: [...referenceShape] });
    return variable;
  }

  /** Register a child module under `name` (its parameters become `name.<child param>`). */
  protected addModule<M extends Module>(name: string, module: M): M {
    if (this.localParameters.has(name) || this.childModules.has(name)) {
      throw new Error(`${this.name}: child name '${name}' is already used`);
    }
    this.childModules.set(name, module);
    // The latest registration names its saved weights (a module shared by two parents is not a tfjs-layers model).
    module.parentModule = { module: this, name };
    return module;
  }

  /** Remove a child (not disposed: the caller owns it again). */
  protected removeModule(name: string): Module | undefined {
    const child = this.childModules.get(name);
    this.childModules.delete(name);
    if (child?.parentModule?.module === this) child.parentModule = null;
    return child;
  }

  /** Direct children, in registration order. */
  children(): Array<[string, Module]> {
    return [...this.childModules.entries()];
  }

  /** Every parameter under its reference name (recursive, dot-joined), registration order. */
  namedParameters(prefix = ''): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [];
    for (const [name, parameter] of this.localParameters) out.push([prefix + name, parameter]);
    for (const [name, child] of this.childModules) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  /** The tf.Variables of trainable parameters (what an optimizer updates). */
  trainableVariables(): tf.Variable[] {
    return this.namedParameters()
      .filter(([, p]) => p.variable.trainable)
      .map(([, p]) => p.variable.read() as tf.Variable);
  }

  /** Freeze (`false`) or unfreeze (`true`) this module and all its children, by structure. */
  setTrainable(trainable: boolean): this {
    for (const [, p] of this.namedParameters()) p.variable.trainable = trainable;
    return this;
  }

  /** Number of scalar parameters (reference shapes). */
  parameterCount(): number {
    return this.namedParameters().reduce((n, [, p]) => n + p.referenceShape.reduce((a, b) => a * b, 1), 0);
  }

  override get trainableWeights(): LayerVariable[] {
    return this.namedParameters().filter(([, p]) => p.variable.trainable).map(([, p]) => p.variable);
  }
  override set trainableWeights(_weights: LayerVariable[]) {
    throw new Error(`${this.name}: trainableWeights is derived from the module's parameters`);
  }
  override get nonTrainableWeights(): LayerVariable[] {
    return this.namedParameters().filter(([, p]) => !p.variable.trainable).map(([, p]) => p.variable);
  }
  override set nonTrainableWeights(_weights: LayerVariable[]) {
    throw new Error(`${this.name}: nonTrainableWeights is derived from the module's parameters`);
  }

  /**
   * The parameters under their reference names (dot-joined, after `prefix`, default none) in PyTorch
   * layout: new tensors, the caller disposes them (`disposeStateDict`). Same as core's `stateDict(module, prefix)`.
   */
  stateDict(prefix = ''): StateDict {
    this.assertUsable();
    return stateDict(this, prefix);
  }

  /**
   * Load reference-named weights with PyTorch's strict semantics: everything is checked first, then
   * assigned, so a bad dict leaves the module unchanged. `dict` is a `Map`, an iterable of
   * `[name, tensor]` pairs or a plain object of tensors; `options.prefix` (default none) is what
   * {@link Module.stateDict} was given. Same as core's `loadStateDict(module, dict, options)`.
   */
  loadStateDict(dict: StateDictInput, options: LoadStateDictOptions = {}): LoadStateDictResult {
    this.assertUsable();
    return loadStateDict(this, dict, options);
  }

  /** True after `dispose()`. */
  get isDisposed(): boolean {
    return this.disposedModule;
  }

  /** Dispose every parameter of this module and its children. Idempotent. */
  override dispose(): DisposeResult {
    let numDisposedVariables = 0;
    if (!this.disposedModule) {
      for (const [, child] of this.childModules) numDisposedVariables += child.dispose().numDisposedVariables;
      for (const [, p] of this.localParameters) {
        p.variable.dispose();
        numDisposedVariables++;
      }
      this.disposedModule = true;
    }
    return { refCountAfterDispose: 0, numDisposedVariables };
  }

  /**
   * The error of a module that is not a tfjs-layers layer (its `call` needs a host's per-forward context,
   * or tfjs' deserialiser could not rebuild it): such a class throws it from `call` and `getConfig` and is
   * not registered with `tf.serialization.registerClass`, so `apply`, `predict` and `model.save` of a
   * model containing it fail naming the supported API (`supported`) instead of saving what cannot load.
   */
  protected notALayer(supported: string): Error {
    return new Error(`${this.getClassName()} is not a tfjs-layers layer: ${supported}`);
  }

  protected assertUsable(): void {
    if (this.disposedModule) throw new Error(`${this.name} is disposed`);
  }
}
