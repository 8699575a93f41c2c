/**
 * What a module package (Parrot, Wings, VPG-C) needs from the model it attaches to. The host
 * models of `@mllm/models` implement it; module packages depend on this contract only, never on
 * a host class.
 */
import type { DecoderHooks, HookHandle } from '../hooks/hooks.js';
import type { VisionSelectFeature } from '../hooks/hooks.js';

/**
 * The base model's shape in HF `config.json` names. Recorded in every `adapter_config.json` and
 * checked when an adapter is loaded, so an adapter never loads into a model it was not made for.
 */
export interface BaseModelShape {
  /** Host family (`mllm-host` for the project's host; HF `model_type` for reference decoders). */
  model_type: string;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Grouped KV heads (equal to `num_attention_heads` without grouping). */
  num_key_value_heads: number;
  rope_theta: number;
  vocab_size: number;
  /** Width of the vision tower's features fed to the projector (absent on a text-only host). */
  vision_hidden_size?: number;
  /** Whether the projected row 0 of each image is the CLS token (`cls_patch`) or a patch (`patch`). */
  vision_select_feature?: VisionSelectFeature;
}

/** The host side of the attach contract. */
export interface ModuleHost {
  /** Attach hooks; their `namedModules` become children of the host under those names until `remove()`. */
  addHooks(hooks: DecoderHooks): HookHandle;
  /** Freeze (`false`) or unfreeze the host's parameters (attached modules included), by structure. */
  setTrainable(trainable: boolean): unknown;
  /**
   * Freeze the base model's own parameters, leaving attached modules' flags as they are (optional;
   * without it `attachModule` freezes the whole host with `setTrainable(false)`).
   */
  freezeBase?(): void;
  /** The base model's shape (see `BaseModelShape`). */
  baseModelShape(): BaseModelShape;
  /** The visual projector (VPG-C re-queries a Q-Former projector). Absent on a text-only host. */
  readonly projector?: unknown;
}

/** Throws a clear error unless `host` has the `ModuleHost` methods. */
export function assertModuleHost(owner: string, host: unknown): asserts host is ModuleHost {
  const h = host as Partial<ModuleHost> | null;
  const missing = ['addHooks', 'setTrainable', 'baseModelShape'].filter(
    (m) => typeof (h as Record<string, unknown> | null)?.[m] !== 'function',
  );
  if (h === null || typeof h !== 'object' || missing.length) {
    const got = h === null ? 'null' : typeof h !== 'object' ? typeof h : `an object without ${missing.join(', ')}`;
    throw new Error(
      `${owner}: host must be a model implementing ModuleHost (addHooks, setTrainable, baseModelShape), ` +
        `such as @mllm/models' HostMLLM; got ${got}`,
    );
  }
}
