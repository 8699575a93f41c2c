/**
 * Lazy access to Node.js built-ins for the trainer's file output (checkpoints, metrics files).
 * The specifier is passed through a function parameter on purpose: bundlers targeting browsers
 * (esbuild, webpack, Vite) then leave the import alone instead of failing to resolve `node:fs`,
 * and nothing is loaded unless a Node-only function is actually called.
 */
const importBuiltin = (specifier: string): Promise<unknown> => import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);

function assertNode(what: string): void {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (typeof proc?.versions?.node !== 'string') throw new Error(`${what} needs Node.js (file system access)`);
}

/** `node:fs/promises` and `node:path`. */
export async function nodeFilePromises(what: string): Promise<{ fs: typeof import('node:fs/promises'); path: typeof import('node:path') }> {
  assertNode(what);
  const [fs, path] = await Promise.all([importBuiltin('node:fs/promises'), importBuiltin('node:path')]);
  return { fs: fs as typeof import('node:fs/promises'), path: path as typeof import('node:path') };
}

/** Synchronous `node:fs` and `node:path`. */
export async function nodeFileSync(what: string): Promise<{ fs: typeof import('node:fs'); path: typeof import('node:path') }> {
  assertNode(what);
  const [fs, path] = await Promise.all([importBuiltin('node:fs'), importBuiltin('node:path')]);
  return { fs: fs as typeof import('node:fs'), path: path as typeof import('node:path') };
}

/** `node:fs/promises`, `node:path`, `node:os` and `node:crypto` (checkpoint sets: locks and hashes). */
export async function nodeCheckpointBuiltins(what: string): Promise<{
  fs: typeof import('node:fs/promises');
  path: typeof import('node:path');
  os: typeof import('node:os');
  crypto: typeof import('node:crypto');
}> {
  assertNode(what);
  const [fs, path, os, crypto] = await Promise.all(['node:fs/promises', 'node:path', 'node:os', 'node:crypto'].map(importBuiltin));
  return {
    fs: fs as typeof import('node:fs/promises'),
    path: path as typeof import('node:path'),
    os: os as typeof import('node:os'),
    crypto: crypto as typeof import('node:crypto'),
  };
}
