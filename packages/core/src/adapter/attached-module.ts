/**
 * One way to attach a module, PEFT-style. Each module package has one verb with one shape,
 *
 *   attachParrot(host, config) / attachWings(host, config) / attachVPGC(host, config)
 *     → AttachedModule { type, module, config, remove(), stateDict(), loadStateDict(), … }
 *
 * all built on `attachModule` below, so they agree on what attaching means:
 *   1. the host's own parameters are frozen (unless `freezeBase: false`; modules attached earlier keep
 *      their trainable flags),
 *   2. the hook is added; the module's parameters appear in the host's state dict under their
 *      reference names (`model.moe_model.*`, `model.layers.{i}.attn_pool.*`, `model.query_tokens`, …),
 *   3. the hook carries a `ModuleRecord` (type, package, version, reference-named config), which is
 *      what a saved host's `config.json` and an `adapter_config.json` record, so both load back with
 *      one call (`loadAdapter`, `loadHostModel`).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { Module, type Parameter } from '../nn/module.js';
import { loadStateDict, stateDict, type LoadStateDictOptions, type LoadStateDictResult, type StateDict } from '../io/state-dict.js';
import type { DecoderHooks } from '../hooks/hooks.js';
import { assertModuleHost, type ModuleHost } from './module-host.js';

/**
 * What a saved host's `config.json` (`mllm_modules`) and an `adapter_config.json` record about one
 * attached module. `config` uses the reference's field names (snake_case).
 */
export interface ModuleRecord {
  /** Module kind: `parrot`, `wings` or `vpgc` (the key of `registerModuleKind`). */
  module_type: string;
  /** The npm package that defines it (imported on load when the kind is not registered yet). */
  module_package: string;
  /** That package's version when the record was written. */
  module_version: string;
  /** The resolved module configuration, reference field names. */
  config: Record<string, unknown>;
}

/** Handle of an attached module (what every `attach*` verb returns). */
export interface AttachedModule<M extends Module = Module, C = unknown> {
  /** Module kind (`parrot`, `wings`, `vpgc`). */
  readonly type: string;
  /** The module (owned by the caller: `remove()` detaches, `module.dispose()` frees it). */
  readonly module: M;
  /** The resolved configuration (the package's own TypeScript form). */
  readonly config: C;
  /** The model it is attached to. */
  readonly host: ModuleHost;
  /** False after `remove()`. */
  readonly isAttached: boolean;
  /** `[name, module]` pairs: where the module's parameters appear in the host's state dict. */
  namedModules(): Array<[string, Module]>;
  /** Type, package, version and reference-named config (what saved files record). */
  moduleRecord(): ModuleRecord;
  /** The module's parameters under their names in the host's state dict (new tensors; dispose them). */
  stateDict(): StateDict;
  /** Load the module's parameters from host-named tensors (strict by default; all or nothing). */
  loadStateDict(dict: StateDict | Iterable<[string, tf.Tensor]>, options?: Omit<LoadStateDictOptions, 'prefix'>): LoadStateDictResult;
  /** Detach the hook (the module is not disposed; the host stays frozen). Idempotent. */
  remove(): void;
}

/** What a module package hands to `attachModule`. */
export interface AttachModuleSpec<M extends Module, C> {
  type: string;
  packageName: string;
  version: string;
  module: M;
  config: C;
  /**
   * The reference-named config recorded in saved files (must be JSON). A function is read each time
   * a record is made, for modules whose settings change after attaching (Parrot's stage switch).
   */
  referenceConfig: Record<string, unknown> | (() => Record<string, unknown>);
  /** The hook callbacks (`namedModules` and `moduleRecord` are filled in by `attachModule`). */
  hooks: Omit<DecoderHooks, 'namedModules' | 'modules' | 'moduleRecord'>;
  /** Where the module's parameters go in the host's state dict. */
  namedModules: Array<[string, Module]>;
  /** Freeze the host's own parameters first (default true). */
  freezeBase?: boolean;
  /** Called after the hook is added (set the module's own trainable parameters here). */
  afterAttach?(): void;
}

/**
 * A throwaway container that sees several modules under their host names, so a load across all of
 * them is checked as a whole before anything is assigned (`loadStateDict`'s all-or-nothing rule).
 */
class ModuleGroup extends Module {
  constructor(private readonly named: Array<[string, Module]>) {
    super({ name: 'attached_module' });
  }
  // The modules are not registered as children (that would re-parent them, which names their tfjs
  // weights): the view only lists their parameters under their host names.
  override namedParameters(prefix = ''): Array<[string, Parameter]> {
    return this.named.flatMap(([name, module]) => module.namedParameters(`${prefix}${name}.`));
  }
  override call(): tf.Tensor {
    throw new Error('ModuleGroup is a view for state dicts; it has no forward');
  }
}

/** Attach `spec.module` to `host` through its hooks (see the file comment for what that does). */
export function attachModule<M extends Module, C>(owner: string, host: ModuleHost, spec: AttachModuleSpec<M, C>): AttachedModule<M, C> {
  assertModuleHost(owner, host);
  const json = (config: Record<string, unknown>) => JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  const { referenceConfig } = spec;
  const fixed = typeof referenceConfig === 'function' ? null : json(referenceConfig); // an object: as at attach time
  const record = (): ModuleRecord => ({
    module_type: spec.type,
    module_package: spec.packageName,
    module_version: spec.version,
    config: fixed ? structuredClone(fixed) : json((referenceConfig as () => Record<string, unknown>)()),
  });
  const named = spec.namedModules.map(([n, m]): [string, Module] => [n, m]);
  const handle = host.addHooks({
    ...spec.hooks,
    namedModules: () => named,
    moduleRecord: record,
  });
  let attached = true;
  try {
    // After addHooks, so a refused attach freezes nothing. `freezeBase` leaves modules attached
    // earlier as they are; a host without it is frozen whole (afterAttach then unfreezes this module).
    if (spec.freezeBase ?? true) {
      if (typeof host.freezeBase === 'function') host.freezeBase();
      else host.setTrainable(false);
    }
    spec.afterAttach?.();
  } catch (error) {
    handle.remove();
    throw error;
  }
  const view = (): ModuleGroup => new ModuleGroup(named);
  return {
    type: spec.type,
    module: spec.module,
    config: spec.config,
    host,
    get isAttached() {
      return attached;
    },
    namedModules: () => [...named],
    moduleRecord: record,
    stateDict: () => stateDict(view()),
    loadStateDict: (dict, options = {}) => loadStateDict(view(), dict, { strict: options.strict ?? true }),
    remove: () => {
      if (!attached) return;
      attached = false;
      handle.remove();
    },
  };
}
