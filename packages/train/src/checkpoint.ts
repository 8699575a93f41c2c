/**
 * Training checkpoints (Node.js): a directory with
 *
 * - `model.safetensors`: the model's state dict in reference names and PyTorch layouts (all
 *   weights, or only the trainable ones);
 * - `optimizer.safetensors`: AdamW state by parameter name (`<name>.exp_avg`, `.exp_avg_sq`,
 *   `.step`), hyperparameters in the metadata;
 * - `trainer_state.json`: step, data-rng state, schedule, settings, last metrics;
 * - `checkpoint.json`: the manifest, written last: the step and every file above with its size
 *   and SHA-256.
 *
 * A checkpoint is one unit. `saveCheckpoint(dir)` writes the whole set into a fresh sibling
 * directory `.<name>.<pid>.<random>.tmp`, fsyncs it, and swaps it in with two renames
 * (`dir → .<name>.….old`, `tmp → dir`), then deletes the old set. A process killed at any point
 * leaves either the previous complete set or the new one at `dir`; in the one window where `dir`
 * is absent (between the two renames), the next save or resume moves the newest complete set back
 * into place. Writers (and resumes) on one `dir` take a lock file `.<name>.lock` beside it, so
 * two processes saving to one path serialize and the last one wins as a whole; a lock left by a
 * killed process on this host is taken over. Orphaned temporaries of earlier interrupted saves
 * are removed by the next save. `resumeFromCheckpoint` verifies the manifest (sizes, hashes, one
 * step in every file) before it assigns anything, and refuses a mixed or incomplete set.
 *
 * `node:` modules are imported lazily: importing @mllm/core in a browser never pulls them in.
 */
import type * as tf from '@tensorflow/tfjs-core';
import {
  type Module, disposeStateDict, loadStateDict, stateDict, readSafetensorsFile, writeFileAtomically, writeSafetensorsFile, syncDirectory, nodeCheckpointBuiltins,
} from '@mllm/core';
import type { AdamW } from './adamw.js';
import type { Trainer, TrainerState } from './trainer.js';

export const CHECKPOINT_FILES = {
  model: 'model.safetensors',
  optimizer: 'optimizer.safetensors',
  trainerState: 'trainer_state.json',
  /** The manifest, written last: a directory without it is not a checkpoint. */
  manifest: 'checkpoint.json',
} as const;

/** What `checkpoint.json` holds. */
export interface CheckpointManifest {
  format: 'mllm-checkpoint';
  version: 1;
  /** `TrainerState.step` of the saved state, or null when no trainer state was saved. */
  step: number | null;
  /** Every other file of the set, with its size in bytes and lowercase hex SHA-256. */
  files: Record<string, { size: number; sha256: string }>;
}

/** Thrown when a checkpoint directory is not one complete set (missing manifest, changed or mixed files). */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export interface SaveCheckpointOptions {
  model: Module;
  optimizer?: AdamW;
  trainerState?: TrainerState;
  /** `all` (default) or only the trainable parameters (smaller; resume needs the same base weights). */
  modelWeights?: 'all' | 'trainable';
  /** How long to wait for another writer's lock on `dir`, in ms (default 600 000). */
  lockTimeoutMs?: number;
}

type Builtins = Awaited<ReturnType<typeof nodeCheckpointBuiltins>>;

/** Where a checkpoint set, its lock and its temporaries live. */
interface SetPaths {
  dir: string;
  parent: string;
  /** `.<name>.`: the prefix of this set's temporaries in `parent`. */
  temporaryPrefix: string;
  lock: string;
}

function setPaths(b: Builtins, dir: string, what: string): SetPaths {
  const resolved = b.path.resolve(dir);
  const parent = b.path.dirname(resolved);
  const name = b.path.basename(resolved);
  if (parent === resolved || !name) throw new Error(`${what}: dir must name a directory below a parent, got ${JSON.stringify(dir)}`);
  return { dir: resolved, parent, temporaryPrefix: `.${name}.`, lock: b.path.join(parent, `.${name}.lock`) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const errorCode = (error: unknown) => (error as { code?: string } | null)?.code;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM';
  }
}

/** A lock left by a process of this host that no longer runs (or an empty one older than 10 s: killed between create and write). */
async function lockIsStale(b: Builtins, lock: string, text: string): Promise<boolean> {
  let holder: { pid?: unknown; host?: unknown } | null = null;
  try {
    holder = JSON.parse(text);
  } catch {
    holder = null;
  }
  if (holder && typeof holder.pid === 'number') return holder.host === b.os.hostname() && !processAlive(holder.pid);
  const stat = await b.fs.stat(lock).catch(() => null);
  return stat !== null && Date.now() - stat.mtimeMs > 10_000;
}

/**
 * Take `paths.lock` (created exclusively, holding this process's pid, host and a token); waits for
 * a live holder up to `timeoutMs`, takes over a stale one. Returns the release function.
 */
async function acquireLock(b: Builtins, paths: SetPaths, what: string, timeoutMs: number, reader = false): Promise<() => Promise<void>> {
  const token = `${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 10)}`;
  const content = JSON.stringify({ pid: process.pid, host: b.os.hostname(), token });
  const start = Date.now();
  let wait = 5;
  for (;;) {
    try {
      await b.fs.writeFile(paths.lock, content, { flag: 'wx' });
      return async () => {
        const now = await b.fs.readFile(paths.lock, 'utf8').catch(() => '');
        if (now === content) await b.fs.rm(paths.lock, { force: true });
      };
    } catch (error) {
      // A reader of a read-only location (released weights on a read-only mount) reads without
      // the lock: nobody can be writing there.
      if (reader && ['EROFS', 'EACCES', 'EPERM'].includes(errorCode(error) ?? '')) return async () => undefined;
      if (errorCode(error) !== 'EEXIST') throw new Error(`${what}: could not create the lock ${paths.lock}: ${(error as Error).message}`);
    }
    const held = await b.fs.readFile(paths.lock, 'utf8').catch(() => null);
    if (held === null) continue; // released meanwhile
    if (await lockIsStale(b, paths.lock, held)) {
      // Move the stale lock aside and make sure it is the one we judged: a live writer may have
      // replaced it in between; then put that one back (link fails if the path is taken again).
      const aside = `${paths.lock}.${token}.stale`;
      try {
        await b.fs.rename(paths.lock, aside);
        const moved = await b.fs.readFile(aside, 'utf8');
        if (moved !== held) await b.fs.link(aside, paths.lock).catch(() => undefined);
      } catch {
        /* someone else took it over first */
      }
      await b.fs.rm(aside, { force: true });
      continue;
    }
    if (Date.now() - start > timeoutMs) {
      throw new CheckpointError(`${what}: ${paths.dir} is locked by another writer (${paths.lock}: ${held}) for more than ${timeoutMs} ms`);
    }
    await sleep(wait);
    wait = Math.min(wait * 2, 200);
  }
}

/** SHA-256 (hex) and size of a file, read in 8 MiB chunks. */
async function hashFile(b: Builtins, file: string): Promise<{ size: number; sha256: string }> {
  const hash = b.crypto.createHash('sha256');
  const handle = await b.fs.open(file, 'r');
  const buffer = new Uint8Array(1 << 23);
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { size, sha256: hash.digest('hex') };
}


/**
 * Check that `directory` holds one complete set: the manifest parses, every listed file has its
 * size and hash, no checkpoint file is there unlisted, and the trainer state and the model
 * metadata carry the manifest's step. Returns the manifest; throws `CheckpointError` otherwise.
 */
async function verifySet(b: Builtins, directory: string, what: string): Promise<CheckpointManifest> {
  const manifestPath = b.path.join(directory, CHECKPOINT_FILES.manifest);
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(await b.fs.readFile(manifestPath, 'utf8'));
  } catch (error) {
    if (errorCode(error) === 'ENOENT') {
      throw new CheckpointError(`${what}: ${directory} has no ${CHECKPOINT_FILES.manifest}: not a complete checkpoint written by saveCheckpoint`);
    }
    throw new CheckpointError(`${what}: could not read ${manifestPath}: ${(error as Error).message}`);
  }
  if (manifest?.format !== 'mllm-checkpoint' || manifest.version !== 1 || typeof manifest.files !== 'object' || manifest.files === null) {
    throw new CheckpointError(`${what}: ${manifestPath} is not an mllm-checkpoint version 1 manifest`);
  }
  const listed = Object.keys(manifest.files);
  if (!listed.includes(CHECKPOINT_FILES.model)) throw new CheckpointError(`${what}: ${manifestPath} lists no ${CHECKPOINT_FILES.model}`);
  const known = new Set<string>([CHECKPOINT_FILES.model, CHECKPOINT_FILES.optimizer, CHECKPOINT_FILES.trainerState]);
  for (const name of listed) {
    if (!known.has(name)) throw new CheckpointError(`${what}: ${manifestPath} lists an unknown file ${JSON.stringify(name)}`);
  }
  const present = new Set(await b.fs.readdir(directory));
  for (const name of known) {
    if (present.has(name) && !listed.includes(name)) {
      throw new CheckpointError(`${what}: ${b.path.join(directory, name)} is not listed in ${CHECKPOINT_FILES.manifest}: a mixed checkpoint set`);
    }
  }
  for (const name of listed) {
    const expected = manifest.files[name];
    const file = b.path.join(directory, name);
    if (!present.has(name)) throw new CheckpointError(`${what}: ${file} is listed in ${CHECKPOINT_FILES.manifest} but missing`);
    const actual = await hashFile(b, file);
    if (actual.size !== expected.size || actual.sha256 !== expected.sha256) {
      throw new CheckpointError(
        `${what}: ${file} does not match ${CHECKPOINT_FILES.manifest} (expected ${expected.size} bytes, sha256 ${expected.sha256}; ` +
          `found ${actual.size} bytes, sha256 ${actual.sha256}): a mixed or damaged checkpoint set`,
      );
    }
  }
  if (listed.includes(CHECKPOINT_FILES.trainerState)) {
    const state = JSON.parse(await b.fs.readFile(b.path.join(directory, CHECKPOINT_FILES.trainerState), 'utf8')) as { step?: unknown };
    if (state.step !== manifest.step) {
      throw new CheckpointError(`${what}: ${CHECKPOINT_FILES.trainerState} is at step ${String(state.step)}, ${CHECKPOINT_FILES.manifest} at step ${String(manifest.step)}: a mixed checkpoint set`);
    }
  }
  return manifest;
}

async function listTemporaries(b: Builtins, paths: SetPaths): Promise<string[]> {
  const entries = await b.fs.readdir(paths.parent).catch(() => [] as string[]);
  return entries
    .filter((e) => e.startsWith(paths.temporaryPrefix) && (e.endsWith('.tmp') || e.endsWith('.old')))
    .map((e) => b.path.join(paths.parent, e));
}

/**
 * Under the lock: when `dir` is absent but an interrupted swap left complete sets beside it, move
 * the newest (highest step; the new set over the old on a tie) into place. Returns its path or null.
 */
async function recoverInterruptedSave(b: Builtins, paths: SetPaths, what: string): Promise<string | null> {
  if (await b.fs.stat(paths.dir).then(() => true, () => false)) return null;
  let best: { path: string; step: number; fresh: boolean } | null = null;
  for (const candidate of await listTemporaries(b, paths)) {
    try {
      const manifest = await verifySet(b, candidate, what);
      const step = manifest.step ?? -1;
      const fresh = candidate.endsWith('.tmp');
      if (!best || step > best.step || (step === best.step && fresh && !best.fresh)) best = { path: candidate, step, fresh };
    } catch {
      /* incomplete: an orphan */
    }
  }
  if (!best) return null;
  await b.fs.rename(best.path, paths.dir);
  await syncDirectory(b.fs, paths.parent);
  return best.path;
}

/** Under the lock (after recovery): remove temporaries of interrupted saves and stray `.tmp` files in `dir`. */
async function removeOrphans(b: Builtins, paths: SetPaths): Promise<void> {
  for (const orphan of await listTemporaries(b, paths)) await b.fs.rm(orphan, { recursive: true, force: true });
  for (const entry of await b.fs.readdir(paths.dir).catch(() => [] as string[])) {
    if (entry.startsWith('.') && entry.endsWith('.tmp')) await b.fs.rm(b.path.join(paths.dir, entry), { recursive: true, force: true });
  }
}

/**
 * Save a checkpoint into `dir` as one unit (see the module comment): the previous set at `dir`
 * is replaced as a whole, never mixed with the new one. `dir` must hold nothing but checkpoint
 * files (it is replaced); its parent is created if needed.
 */
export async function saveCheckpoint(dir: string, options: SaveCheckpointOptions): Promise<void> {
  if (typeof dir !== 'string' || dir.length === 0) throw new Error(`saveCheckpoint: dir must be a non-empty string, got ${String(dir)}`);
  if (!options?.model) throw new Error('saveCheckpoint: options.model is required');
  const modelWeights = options.modelWeights ?? 'all';
  if (modelWeights !== 'all' && modelWeights !== 'trainable') {
    throw new Error(`saveCheckpoint: modelWeights must be 'all' or 'trainable', got ${String(modelWeights)}`);
  }
  const lockTimeoutMs = options.lockTimeoutMs ?? 600_000;
  if (typeof lockTimeoutMs !== 'number' || !(lockTimeoutMs >= 0)) throw new Error(`saveCheckpoint: lockTimeoutMs must be a number >= 0, got ${String(lockTimeoutMs)}`);
  const b = await nodeCheckpointBuiltins('saveCheckpoint');
  const { fs, path } = b;
  const paths = setPaths(b, dir, 'saveCheckpoint');
  await fs.mkdir(paths.parent, { recursive: true });
  const release = await acquireLock(b, paths, 'saveCheckpoint', lockTimeoutMs);
  let staging: string | null = null;
  try {
    await recoverInterruptedSave(b, paths, 'saveCheckpoint');
    await removeOrphans(b, paths);
    const existing = await fs.readdir(paths.dir).catch((error) => {
      if (errorCode(error) === 'ENOENT') return null;
      throw error;
    });
    const ours = new Set<string>(Object.values(CHECKPOINT_FILES));
    const foreign = existing?.filter((e) => !ours.has(e)) ?? [];
    if (foreign.length) {
      throw new CheckpointError(
        `saveCheckpoint: ${paths.dir} holds files that are not part of a checkpoint (${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', …' : ''}); ` +
          'a checkpoint replaces its directory as a whole: give it a directory of its own',
      );
    }

    const unique = `${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 10)}`;
    staging = path.join(paths.parent, `${paths.temporaryPrefix}${unique}.tmp`);
    await fs.mkdir(staging);
    const files: CheckpointManifest['files'] = {};
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
      await writeSafetensorsFile(path.join(staging, CHECKPOINT_FILES.model), weights, {
        format: 'pt',
        weights: modelWeights,
        step: String(options.trainerState?.step ?? ''),
      });
    } finally {
      disposeStateDict(weights);
    }
    files[CHECKPOINT_FILES.model] = await hashFile(b, path.join(staging, CHECKPOINT_FILES.model));

    if (options.optimizer) {
      const state = options.optimizer.stateDict();
      try {
        await writeSafetensorsFile(path.join(staging, CHECKPOINT_FILES.optimizer), state, {
          optimizer: 'AdamW',
          config: JSON.stringify(options.optimizer.config()),
        });
      } finally {
        disposeStateDict(state);
      }
      files[CHECKPOINT_FILES.optimizer] = await hashFile(b, path.join(staging, CHECKPOINT_FILES.optimizer));
    }

    if (options.trainerState) {
      const text = `${JSON.stringify({ ...options.trainerState, modelWeights }, null, 2)}\n`;
      await writeFileAtomically(path.join(staging, CHECKPOINT_FILES.trainerState), async (handle) => {
        await handle.writeFile(text, 'utf8');
      });
      files[CHECKPOINT_FILES.trainerState] = await hashFile(b, path.join(staging, CHECKPOINT_FILES.trainerState));
    }

    // The manifest last: a staging directory without it is incomplete and never swapped in.
    const manifest: CheckpointManifest = { format: 'mllm-checkpoint', version: 1, step: options.trainerState?.step ?? null, files };
    await writeFileAtomically(path.join(staging, CHECKPOINT_FILES.manifest), async (handle) => {
      await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
    });
    await syncDirectory(b.fs, staging);

    // Swap: dir → old, staging → dir. Between the two renames dir is absent; the next save or
    // resume moves the newest complete set (here: staging) back into place.
    let old: string | null = null;
    if (existing) {
      old = path.join(paths.parent, `${paths.temporaryPrefix}${unique}.old`);
      await fs.rename(paths.dir, old);
    }
    await fs.rename(staging, paths.dir);
    await syncDirectory(b.fs, paths.parent);
    if (old) await fs.rm(old, { recursive: true, force: true });
  } catch (error) {
    // Put a complete set back at dir if the swap failed half way, then leave no staging
    // directory behind (a killed process's is removed by the next save).
    await recoverInterruptedSave(b, paths, 'saveCheckpoint').catch(() => undefined);
    if (staging && staging !== paths.dir) await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  } finally {
    await release();
  }
}

export interface ResumeOptions {
  model: Module;
  optimizer?: AdamW;
  /** Restores step and data rng (`Trainer.loadState`). */
  trainer?: Trainer;
  /** Passed to `Trainer.loadState`. */
  allowConfigChange?: boolean;
  /** How long to wait for a writer's lock on `dir`, in ms (default 600 000). */
  lockTimeoutMs?: number;
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
 * `trainer`. The set is verified first (`checkpoint.json`: every file's size and SHA-256, one
 * step throughout; a mixed or incomplete set is a `CheckpointError`), then all files are read and
 * validated before anything is assigned; the model load itself is all-or-nothing (`loadStateDict`).
 * Takes the writers' lock while reading, and finishes a swap that a killed writer left half done.
 */
export async function resumeFromCheckpoint(dir: string, options: ResumeOptions): Promise<ResumedCheckpoint> {
  if (typeof dir !== 'string' || dir.length === 0) throw new Error(`resumeFromCheckpoint: dir must be a non-empty string, got ${String(dir)}`);
  if (!options?.model) throw new Error('resumeFromCheckpoint: options.model is required');
  const b = await nodeCheckpointBuiltins('resumeFromCheckpoint');
  const { fs, path } = b;
  const paths = setPaths(b, dir, 'resumeFromCheckpoint');
  const parentExists = await fs.stat(paths.parent).then(() => true, () => false);
  if (!parentExists) throw new CheckpointError(`resumeFromCheckpoint: ${paths.dir} does not exist`);
  const release = await acquireLock(b, paths, 'resumeFromCheckpoint', options.lockTimeoutMs ?? 600_000, true);
  let weights: Awaited<ReturnType<typeof readSafetensorsFile>>;
  let optimizerState: Map<string, tf.Tensor> | null = null;
  let trainerState: ResumedCheckpoint['trainerState'] = null;
  let manifest: CheckpointManifest;
  try {
    await recoverInterruptedSave(b, paths, 'resumeFromCheckpoint');
    if (!(await fs.stat(paths.dir).then(() => true, () => false))) throw new CheckpointError(`resumeFromCheckpoint: ${paths.dir} does not exist`);
    manifest = await verifySet(b, paths.dir, 'resumeFromCheckpoint');
    const has = (name: string) => Object.hasOwn(manifest.files, name);
    if (has(CHECKPOINT_FILES.trainerState)) {
      trainerState = JSON.parse(await fs.readFile(path.join(paths.dir, CHECKPOINT_FILES.trainerState), 'utf8'));
    } else if (options.trainer) {
      throw new CheckpointError(`resumeFromCheckpoint: ${paths.dir} has no ${CHECKPOINT_FILES.trainerState}, but a trainer was given to restore`);
    }
    if (options.optimizer && !has(CHECKPOINT_FILES.optimizer)) {
      throw new CheckpointError(`resumeFromCheckpoint: ${paths.dir} has no ${CHECKPOINT_FILES.optimizer}, but an optimizer was given to restore`);
    }
    weights = await readSafetensorsFile(path.join(paths.dir, CHECKPOINT_FILES.model));
    try {
      if (options.optimizer) optimizerState = (await readSafetensorsFile(path.join(paths.dir, CHECKPOINT_FILES.optimizer))).tensors;
    } catch (error) {
      disposeStateDict(weights.tensors);
      throw error;
    }
  } finally {
    await release();
  }
  try {
    const savedStep = weights.metadata?.step ?? '';
    if (savedStep !== String(manifest.step ?? '')) {
      throw new CheckpointError(`resumeFromCheckpoint: ${CHECKPOINT_FILES.model} is at step ${JSON.stringify(savedStep)}, ${CHECKPOINT_FILES.manifest} at step ${String(manifest.step)}: a mixed checkpoint set`);
    }
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
