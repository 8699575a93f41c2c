/**
 * Training checkpoints (Node.js): a directory with
 *
 * - `model.safetensors`: the model's state dict in reference names and PyTorch layouts (all
 *   weights, or only the trainable ones);
 * - `optimizer.safetensors`: AdamW state by parameter name (`<name>.exp_avg`, `.exp_avg_sq`,
 *   `.step`), hyperparameters in the metadata;
 * - `trainer_state.json`: step, data-rng state, schedule, settings, last metrics.
 *
 * Each file is written atomically (temporary file in the same directory, fsync, rename), and
 * `trainer_state.json` last, so a directory with it holds a complete checkpoint. `node:` modules
 * are imported lazily: importing @mllm/core in a browser never pulls them in.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { Module } from '../nn/module.js';
import { disposeStateDict, loadStateDict, stateDict } from '../io/state-dict.js';
import { readSafetensorsFile, writeFileAtomically, writeSafetensorsFile } from '../io/safetensors-node.js';
import type { AdamW } from './adamw.js';
import { nodeFilePromises } from './node-builtins.js';
import type { Trainer, TrainerState } from './trainer.js';

export const CHECKPOINT_FILES = {
  model: 'model.safetensors',
  optimizer: 'optimizer.safetensors',
  trainerState: 'trainer_state.json',
} as const;

export interface SaveCheckpointOptions {
  model: Module;
  optimizer?: AdamW;
  trainerState?: TrainerState;
  /** `all` (default) or only the trainable parameters (smaller; resume needs the same base weights). */
  modelWeights?: 'all' | 'trainable';
}

/** Save a checkpoint into `dir` (created if needed). */
export async function saveCheckpoint(dir: string, options: SaveCheckpointOptions): Promise<void> {
  if (typeof dir !== 'string' || dir.length === 0) throw new Error(`saveCheckpoint: dir must be a non-empty string, got ${String(dir)}`);
  if (!options?.model) throw new Error('saveCheckpoint: options.model is required');
  const modelWeights = options.modelWeights ?? 'all';
  if (modelWeights !== 'all' && modelWeights !== 'trainable') {
    throw new Error(`saveCheckpoint: modelWeights must be 'all' or 'trainable', got ${String(modelWeights)}`);
  }
  const { fs, path } = await nodeFilePromises('saveCheckpoint');
  await fs.mkdir(dir, { recursive: true });

  const weights = stateDict(options.model);
  try {
    if (modelWeights === 'trainable') {
      const trainable = new Set(options.model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n));
      for (const [name, tensor] of weights) {
        if (!trainable.has(name)) {
          tensor.dispose();
          weights.delete(name);
        }
      }
    }
    await writeSafetensorsFile(path.join(dir, CHECKPOINT_FILES.model), weights, {
      format: 'pt',
      weights: modelWeights,
      step: String(options.trainerState?.step ?? ''),
    });
  } finally {
    disposeStateDict(weights);
  }

  if (options.optimizer) {
    const state = options.optimizer.stateDict();
    try {
      await writeSafetensorsFile(path.join(dir, CHECKPOINT_FILES.optimizer), state, {
        optimizer: 'AdamW',
        config: JSON.stringify(options.optimizer.config()),
      });
    } finally {
      disposeStateDict(state);
    }
  }

  if (options.trainerState) {
    const text = `${JSON.stringify({ ...options.trainerState, modelWeights }, null, 2)}\n`;
    await writeFileAtomically(path.join(dir, CHECKPOINT_FILES.trainerState), async (handle) => {
      await handle.writeFile(text, 'utf8');
    });
  }
}

export interface ResumeOptions {
  model: Module;
  optimizer?: AdamW;
  /** Restores step and data rng (`Trainer.loadState`). */
  trainer?: Trainer;
  /** Passed to `Trainer.loadState`. */
  allowConfigChange?: boolean;
}

export interface ResumedCheckpoint {
  /** The saved trainer state, or null when the checkpoint has none. */
  trainerState: (TrainerState & { modelWeights?: 'all' | 'trainable' }) | null;
  /** Parameter names loaded into the model. */
  loadedKeys: string[];
}

/**
 * Load a checkpoint written by `saveCheckpoint` into `model` (strict: every parameter present,
 * unless the checkpoint holds only trainable weights; no unknown names), `optimizer` and
 * `trainer`. All files are read and validated before anything is assigned where possible; the
 * model load itself is all-or-nothing (`loadStateDict`).
 */
export async function resumeFromCheckpoint(dir: string, options: ResumeOptions): Promise<ResumedCheckpoint> {
  if (!options?.model) throw new Error('resumeFromCheckpoint: options.model is required');
  const { fs, path } = await nodeFilePromises('resumeFromCheckpoint');
  const statePath = path.join(dir, CHECKPOINT_FILES.trainerState);
  let trainerState: ResumedCheckpoint['trainerState'] = null;
  try {
    trainerState = JSON.parse(await fs.readFile(statePath, 'utf8'));
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== 'ENOENT') throw new Error(`resumeFromCheckpoint: could not read ${statePath}: ${(error as Error).message}`);
    if (options.trainer) throw new Error(`resumeFromCheckpoint: ${statePath} is missing, but a trainer was given to restore`);
  }

  const weights = await readSafetensorsFile(path.join(dir, CHECKPOINT_FILES.model));
  let optimizerState: Map<string, tf.Tensor> | null = null;
  try {
    if (options.optimizer) optimizerState = (await readSafetensorsFile(path.join(dir, CHECKPOINT_FILES.optimizer))).tensors;
    const onlyTrainable = (weights.metadata?.weights ?? trainerState?.modelWeights) === 'trainable';
    if (onlyTrainable) {
      const known = new Set(options.model.namedParameters().map(([n]) => n));
      const unexpected = [...weights.tensors.keys()].filter((k) => !known.has(k));
      if (unexpected.length) throw new Error(`resumeFromCheckpoint: unexpected keys in ${CHECKPOINT_FILES.model}: ${unexpected.join(', ')}`);
    }
    if (trainerState && options.trainer) {
      // Validate before touching anything: loadState checks the state and the settings.
      const probe = options.trainer.state();
      options.trainer.loadState(trainerState, { allowConfigChange: options.allowConfigChange });
      options.trainer.loadState(probe, { allowConfigChange: true });
    }
    const { loadedKeys } = loadStateDict(options.model, weights.tensors, { strict: !onlyTrainable });
    if (options.optimizer && optimizerState) options.optimizer.loadStateDict(optimizerState);
    if (trainerState && options.trainer) options.trainer.loadState(trainerState, { allowConfigChange: options.allowConfigChange });
    return { trainerState, loadedKeys };
  } finally {
    disposeStateDict(weights.tensors);
    if (optimizerState) disposeStateDict(optimizerState);
  }
}
