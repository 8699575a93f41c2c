/**
 * Switching tfjs' active backend reliably.
 *
 * `tf.setBackend(name)` resolves `false` when the backend fails to initialize, and leaves the engine
 * pointing at the failed name with no instance (the next op then tries the highest-priority
 * backend). It also prints the failure with `console.warn`. `activateBackend` captures those
 * messages, verifies the switch with `tf.getBackend()`, and on failure restores the previous
 * backend before reporting why.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Result of one activation attempt. */
export interface ActivationResult {
  ok: boolean;
  /** Why it failed (captured tfjs/emscripten messages), empty on success. */
  why: string;
}

/**
 * Runs `fn` while `console.warn`/`console.error` output is collected instead of printed
 * (printed as well when `verbose`). Returns fn's result and the collected lines.
 */
export async function captureConsole<T>(fn: () => Promise<T>, verbose = false): Promise<{ value: T; messages: string[] }> {
  const messages: string[] = [];
  const original = { warn: console.warn, error: console.error };
  const collect = (level: 'warn' | 'error') => (...args: unknown[]) => {
    messages.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
    if (verbose) original[level].apply(console, args);
  };
  console.warn = collect('warn');
  console.error = collect('error');
  try {
    const value = await fn();
    return { value, messages };
  } finally {
    console.warn = original.warn;
    console.error = original.error;
  }
}

/** Condenses captured messages into one short reason. */
export function summarizeMessages(messages: string[], maxLength = 300): string {
  const lines = messages
    .flatMap((m) => m.split('\n'))
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !/^at\s/.test(l) && !/^=+$/.test(l));
  const unique = [...new Set(lines)];
  const text = unique.join(' | ');
  return text.length > maxLength ? `${text.slice(0, maxLength - 1)}…` : text;
}

/**
 * Makes `name` the active tfjs backend and checks that it really is.
 * @param name a backend already registered with `tf.registerBackend`
 * @param verbose also print tfjs' own warnings
 * @param isAbandoned when it answers true once `tf.setBackend` settles, the caller gave this
 *   attempt up (and already moved on): the result is returned as a failure without touching the engine
 */
export async function activateBackend(name: string, verbose = false, isAbandoned: () => boolean = () => false): Promise<ActivationResult> {
  if (tf.findBackendFactory(name) == null) {
    return { ok: false, why: `backend '${name}' is not registered with tfjs` };
  }
  const previous = currentBackendName();
  let threw: unknown;
  const { value: success, messages } = await captureConsole(async () => {
    try {
      return await tf.setBackend(name);
    } catch (error) {
      threw = error;
      return false;
    }
  }, verbose);
  if (isAbandoned()) return { ok: false, why: `the start of '${name}' was abandoned` };
  if (success && tf.getBackend() === name && tf.findBackend(name) != null) return { ok: true, why: '' };
  const why =
    summarizeMessages(threw === undefined ? messages : [...messages, String(threw)]) ||
    `tf.setBackend('${name}') returned ${String(success)} and tf.getBackend() is '${tf.getBackend()}'`;
  await restoreBackend(previous, name);
  return { ok: false, why };
}

/** The active backend's name, or `undefined` when none was initialized yet (never triggers init). */
export function currentBackendName(): string | undefined {
  const engine = tf.engine() as unknown as { backendName?: string | null; backendInstance?: unknown };
  return engine.backendInstance != null && engine.backendName ? engine.backendName : undefined;
}

/**
 * After a failed switch: go back to the previously active backend, else to cpu if registered,
 * else leave the engine with no active backend.
 */
async function restoreBackend(previous: string | undefined, failed: string): Promise<void> {
  const candidates = [previous, 'cpu'].filter((n): n is string => n != null && n !== failed);
  for (const candidate of candidates) {
    if (tf.findBackendFactory(candidate) == null) continue;
    const { value: ok } = await captureConsole(() => tf.setBackend(candidate).catch(() => false));
    if (ok) return;
  }
  const engine = tf.engine() as unknown as { backendName?: string | null; backendInstance?: unknown };
  if (engine.backendName === failed) {
    engine.backendName = null;
    engine.backendInstance = null;
  }
}
