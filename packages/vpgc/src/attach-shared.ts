/**
 * Checks shared by `attachVPGC` and `attachLinearVPGC` (and their `…FromRecord` twins): the update layer
 * both variants hook, and the saved record's `config`. Internal: not re-exported from the package index.
 */
import { assertModuleHost, assertOptionsObject, describeValue, type ModuleHost, type ModuleRecord } from '@mllm/core';
import { defaultUpdateLayer } from './vpgc.js';

/**
 * The layer an attach hooks: `requested` (the attach config's `updateLayer`), else the given module's
 * (`vpgcLayer`), else `⌊numLayers/2⌋`; it must lie in `[0, numLayers)` and agree with the given module's.
 */
export function resolveUpdateLayer(owner: string, requested: number | undefined, vpgcLayer: number | undefined, numLayers: number): number {
  const updateLayer = requested ?? vpgcLayer ?? defaultUpdateLayer(numLayers);
  if (!Number.isInteger(updateLayer) || updateLayer < 0 || updateLayer >= numLayers) {
    throw new Error(`${owner}: updateLayer must be in [0, ${numLayers}), got ${describeValue(updateLayer)}`);
  }
  if (vpgcLayer !== undefined && vpgcLayer !== updateLayer) {
    throw new Error(`${owner}: config.updateLayer ${updateLayer} differs from config.vpgc.updateLayer ${vpgcLayer}`);
  }
  return updateLayer;
}

/**
 * A saved record's `config` for an attach from that record: `host` a `ModuleHost`, `record` and its
 * `config` plain objects, and no field outside `known` (the error lists them).
 */
export function recordConfig<K extends string>(
  owner: string,
  host: ModuleHost,
  record: ModuleRecord,
  known: readonly K[],
): Partial<Record<K, unknown>> {
  assertModuleHost(owner, host);
  assertOptionsObject(owner, 'record', record);
  const config = record.config as Partial<Record<K, unknown>>;
  assertOptionsObject(owner, 'record.config', config);
  const unknown = Object.keys(config).filter((k) => !(known as readonly string[]).includes(k));
  if (unknown.length) throw new Error(`${owner}: unknown config field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return config;
}

/** A record's `update_layer`: an integer in `[0, numLayers)`. */
export function recordUpdateLayer(owner: string, layer: unknown, numLayers: number): number {
  if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0 || layer >= numLayers) {
    throw new Error(`${owner}: config.update_layer must be an integer in [0, ${numLayers}), got ${describeValue(layer)}`);
  }
  return layer;
}
