/**
 * The decoders' side of the hook contract, written once for every decoder in this package (`HostLM`,
 * `HFCausalLM`): attach/remove hooks and register their modules as children, and run the hook points
 * of one forward in attach order:
 *
 *   prepare(ctx)                       once, before layer 0 (cleanups after the forward)
 *   per layer ℓ: h ← beforeLayer(ℓ, h) then the layer, whose attention residual goes through
 *                afterAttention(ℓ, { residual, …, attentionProbs only where requested })
 */
import type * as tf from '@tensorflow/tfjs-core';
import { describeValue, type AfterAttentionArgs, type DecoderHooks, type ForwardContext, type HookHandle, type Module } from '@mllm/core';
import { assertSameShape } from './decoder-layer.js';

/** What `AttachedHooks` needs from the decoder that owns it. */
export interface HookOwner {
  /** Name for error messages (`HostLM.addHooks`, …). */
  readonly owner: string;
  numLayers(): number;
  /** Register / unregister a child module (the decoder's protected `addModule` / `removeModule`). */
  addChild(name: string, module: Module): void;
  removeChild(name: string): void;
}

interface Entry {
  hooks: DecoderHooks;
  moduleNames: string[];
}

export class AttachedHooks {
  private readonly entries: Entry[] = [];
  private nextId = 0;

  constructor(private readonly decoder: HookOwner) {}

  /** Attached hooks, attach order. */
  get hooks(): DecoderHooks[] {
    return this.entries.map((e) => e.hooks);
  }

  /** Child names of the attached hooks' modules. */
  get moduleNames(): string[] {
    return this.entries.flatMap((e) => e.moduleNames);
  }

  /** True when some attached hook cannot run on cached decode steps. */
  get requiresFullSequence(): boolean {
    return this.entries.some((e) => e.hooks.requiresFullSequence);
  }

  /** Attach `hooks`; their modules become children under `namedModules` names or `hooks.<id>.<i>`. */
  add(hooks: DecoderHooks): HookHandle {
    const { owner } = this.decoder;
    if (!hooks || typeof hooks !== 'object') throw new Error(`${owner}: hooks must be an object, got ${describeValue(hooks)}`);
    const numLayers = this.decoder.numLayers();
    for (const layer of hooks.attentionProbsLayers ?? []) {
      if (!Number.isInteger(layer) || layer < 0 || layer >= numLayers) {
        throw new Error(`${owner}: attentionProbsLayers entries must be layer indices in [0, ${numLayers}), got ${describeValue(layer)}`);
      }
    }
    const id = this.nextId++;
    const named: Array<[string, Module]> = [
      ...(hooks.namedModules?.() ?? []),
      ...(hooks.modules?.() ?? []).map((m, i): [string, Module] => [`hooks.${id}.${i}`, m]),
    ];
    const moduleNames: string[] = [];
    try {
      for (const [name, module] of named) {
        this.decoder.addChild(name, module);
        moduleNames.push(name);
      }
    } catch (error) {
      for (const name of moduleNames) this.decoder.removeChild(name);
      throw error;
    }
    const entry: Entry = { hooks, moduleNames };
    this.entries.push(entry);
    return {
      remove: () => {
        const index = this.entries.indexOf(entry);
        if (index < 0) return;
        this.entries.splice(index, 1);
        for (const name of moduleNames) this.decoder.removeChild(name);
      },
    };
  }

  /** Freeze every parameter of `decoder` except those of attached hooks' modules (`ModuleHost.freezeBase`). */
  freezeBase(decoder: Module): void {
    const names = new Set(this.moduleNames);
    const moduleParameters = new Set(
      decoder.children().filter(([n]) => names.has(n)).flatMap(([n, m]) => m.namedParameters(`${n}.`).map(([p]) => p)),
    );
    for (const [name, parameter] of decoder.namedParameters()) if (!moduleParameters.has(name)) parameter.variable.trainable = false;
  }

  /** Run every `prepare(ctx)`; returns what to call after the forward (runs the hooks' cleanups). */
  prepare(ctx: ForwardContext): () => void {
    const cleanups: Array<() => void> = [];
    const finish = (): void => {
      for (const cleanup of cleanups.splice(0)) cleanup();
    };
    try {
      for (const hook of this.hooks) {
        const cleanup = hook.prepare?.(ctx);
        if (typeof cleanup === 'function') cleanups.push(cleanup);
      }
    } catch (error) {
      finish(); // a later prepare failed: undo the earlier ones
      throw error;
    }
    return finish;
  }

  /** `h` after every `beforeLayer(index)` hook, in attach order. */
  beforeLayer(index: number, h: tf.Tensor3D, ctx: ForwardContext): tf.Tensor3D {
    for (const hook of this.hooks) {
      const replaced = hook.beforeLayer?.(index, h, ctx);
      if (replaced) {
        assertSameShape('beforeLayer', replaced, h);
        h = replaced;
      }
    }
    return h;
  }

  /** Whether layer `index` must return its attention probabilities. */
  needsAttentionProbs(index: number): boolean {
    return this.hooks.some((hk) => hk.afterAttention && hk.attentionProbsLayers?.includes(index));
  }

  /**
   * The layer's `afterAttention` callback for layer `index` (undefined without such hooks): the
   * residual through every hook in attach order, each seeing the previous replacement; a hook gets
   * the probabilities only for the layers it listed.
   */
  afterAttention(index: number, ctx: ForwardContext): ((args: AfterAttentionArgs) => tf.Tensor3D) | undefined {
    const afterHooks = this.hooks.filter((hk) => hk.afterAttention);
    if (afterHooks.length === 0) return undefined;
    return (args) => {
      let residual = args.residual;
      for (const hook of afterHooks) {
        const withProbs = hook.attentionProbsLayers?.includes(index) ?? false;
        const replaced = hook.afterAttention!(index, { ...args, residual, attentionProbs: withProbs ? args.attentionProbs : null }, ctx);
        if (replaced) {
          assertSameShape('afterAttention', replaced, residual);
          residual = replaced;
        }
      }
      return residual;
    };
  }
}
