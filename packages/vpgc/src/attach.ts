/**
 * Adapter-style attachment of VPG-C to the host MLLM: only the five VPG-C tensors train; the host
 * (LLM, vision tower, VPG) is frozen by structure (`setTrainable(false)`), and the hook runs at the
 * input of decoder layer `updateLayer` on prefill passes only (cached decode steps never re-run it).
 */
import type { Module } from '@mllm/core';
import { QFormerVPG } from './qformer-vpg.js';
import { VPGC, defaultUpdateLayer } from './vpgc.js';
import type { VPGCDecoderHooks, VPGCHost } from './hook-types.js';

export interface AttachVPGCConfig {
  /** The host's VPG (default: the host's projector when it is a `QFormerVPG`). */
  vpg?: QFormerVPG;
  /** 0-based layer at whose input the hook runs (default `⌊numLayers/2⌋`: 16 of 32). */
  updateLayer?: number;
  /** Host decoder depth (default: read from the host's config `text.numLayers` / `numLayers`). */
  numLayers?: number;
  /** Reference behaviour: Q-Former dropout stays on at inference (default false). */
  dropoutAtInference?: boolean;
  /** Use this VPGC (e.g. loaded from an adapter) instead of creating a fresh zero-initialised one. */
  vpgc?: VPGC;
}

/** What `attachVPGC` returns. */
export interface AttachedVPGC {
  vpgc: VPGC;
  hooks: VPGCDecoderHooks;
  /** Detach the hook (the VPGC is not disposed; the host stays frozen: call `setTrainable(true)` to undo). */
  remove(): void;
}

interface HostShape {
  projector?: unknown;
  visualProjector?: unknown;
  config?: { text?: { numLayers?: number }; numLayers?: number };
  textConfig?: { numLayers?: number };
  setTrainable?(trainable: boolean): unknown;
}

/** The hook object for `vpgc` (for hosts that take hooks directly). */
export function vpgcHooks(vpgc: VPGC): VPGCDecoderHooks {
  return {
    beforeLayer: (layerIndex, hidden, ctx) => vpgc.beforeLayer(layerIndex, hidden, ctx),
    requiresFullSequence: false,
    modules: (): Module[] => [vpgc],
  };
}

/** Create (or take) a VPGC, freeze everything else, and attach its hook to `model` via `addHooks`. */
export function attachVPGC(model: VPGCHost, config: AttachVPGCConfig = {}): AttachedVPGC {
  if (!model || typeof model !== 'object' || typeof (model as { addHooks?: unknown }).addHooks !== 'function') {
    throw new Error(`attachVPGC: model must be a host model with addHooks(hooks) (@mllm/core HostMLLM), got ${model === null ? 'null' : typeof model}`);
  }
  if (typeof config !== 'object' || config === null) throw new Error(`attachVPGC: config must be an object, got ${config === null ? 'null' : typeof config}`);
  const host = model as VPGCHost & HostShape;
  const candidate = config.vpg ?? config.vpgc?.vpg ?? host.projector ?? host.visualProjector;
  if (!(candidate instanceof QFormerVPG)) {
    throw new Error('attachVPGC: config.vpg must be a QFormerVPG (or the host projector must be one), got ' +
      (candidate === undefined ? 'undefined' : (candidate as object).constructor?.name ?? typeof candidate));
  }
  const vpg = candidate;
  const numLayers = config.numLayers ?? host.textConfig?.numLayers ?? host.config?.text?.numLayers ?? host.config?.numLayers;
  const updateLayer = config.updateLayer ?? config.vpgc?.updateLayer ?? (numLayers !== undefined ? defaultUpdateLayer(numLayers) : undefined);
  if (updateLayer === undefined) throw new Error('attachVPGC: pass config.updateLayer or config.numLayers (the host config has no numLayers)');
  if (numLayers !== undefined && (updateLayer < 0 || updateLayer >= numLayers)) {
    throw new Error(`attachVPGC: updateLayer must be in [0, ${numLayers}), got ${updateLayer}`);
  }
  const vpgc = config.vpgc ?? new VPGC({ vpg, updateLayer, dropoutAtInference: config.dropoutAtInference });
  if (config.vpgc && config.vpgc.updateLayer !== updateLayer) {
    throw new Error(`attachVPGC: config.updateLayer ${updateLayer} differs from config.vpgc.updateLayer ${config.vpgc.updateLayer}`);
  }
  host.setTrainable?.(false);
  vpg.setTrainable(false);
  vpgc.setTrainable(true);
  const hooks = vpgcHooks(vpgc);
  const handle = model.addHooks(hooks);
  return { vpgc, hooks, remove: () => handle.remove() };
}
