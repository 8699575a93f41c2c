/**
 * tfjs-layers serialisation round trips in memory: what `model.save('file://…')` would write (topology,
 * weight specs, weight data), without a file system, so the same test runs on every backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** `model.save` into memory; resolves to the artifacts a save handler receives. */
export async function saveLayersModelInMemory(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (saved) => {
      artifacts = saved;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts) throw new Error('saveLayersModelInMemory: the save handler was not called');
  return artifacts;
}

/** The saved weights by name (new tensors; the caller disposes them). */
export function decodeSavedWeights(artifacts: tf.io.ModelArtifacts): tf.NamedTensorMap {
  if (!artifacts.weightData || !artifacts.weightSpecs) throw new Error('decodeSavedWeights: the artifacts have no weights');
  return tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
}

/**
 * Every weight of `model` ← N(0, std²) (seeded per weight), so a reload that skipped one — or kept a
 * zero-initialised one such as a LoRA `B` — changes the outputs.
 */
export function randomizeLayersModelWeights(model: tfl.LayersModel, seed: number, std = 0.5): void {
  tf.tidy(() => model.weights.forEach((w, i) => w.write(tf.randomNormal(w.read().shape, 0, std, 'float32', seed + i))));
}

/** Save `model` in memory and load it back with `tf.loadLayersModel` (the caller disposes both models: `model.dispose()` disposes its layers' variables). */
export async function reloadLayersModel(model: tfl.LayersModel): Promise<{ artifacts: tf.io.ModelArtifacts; loaded: tfl.LayersModel }> {
  const artifacts = await saveLayersModelInMemory(model);
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
  return { artifacts, loaded };
}

