/**
 * Small runtime helpers for backend selection: Node detection, environment variables, optional
 * dynamic imports (backend packages are optional peer dependencies) and module resolution.
 */

/** True when running under Node.js (not a browser, not a web worker). */
export function isNodeRuntime(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof proc?.versions?.node === 'string';
}

/** Reads an environment variable in Node; `undefined` elsewhere or when unset/empty. */
export function readEnvironment(name: string): string | undefined {
  if (!isNodeRuntime()) return undefined;
  const value = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Sets an environment variable in Node (no-op elsewhere). */
export function setEnvironment(name: string, value: string): void {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (env) env[name] = value;
}

/** Outcome of an optional import: the module, or why it could not be loaded. */
export type OptionalImport<T> = { ok: true; module: T } | { ok: false; error: string };

/**
 * Dynamically imports an optional package. The specifier is a variable on purpose: bundlers must
 * not try to resolve packages the user did not install (browser users register backends by
 * importing them themselves; `initBackend` then finds them in the tfjs registry).
 */
export async function importOptional<T = unknown>(specifier: string): Promise<OptionalImport<T>> {
  try {
    const module = (await import(/* @vite-ignore */ /* webpackIgnore: true */ specifier)) as T;
    return { ok: true, module };
  } catch (error) {
    const message = firstLine(error);
    const notFound = /Cannot find (package|module)|ERR_MODULE_NOT_FOUND|MODULE_NOT_FOUND/.test(message);
    return { ok: false, error: notFound ? `cannot find ${specifier}` : message };
  }
}

/** First line of an error's message (module-not-found errors carry long require stacks). */
export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]!.trim();
}

/**
 * Resolves a package's entry file to an absolute path in Node, searching from this module's
 * location and then from the working directory. Returns `undefined` when not resolvable.
 */
export async function resolvePackageEntry(specifier: string): Promise<string | undefined> {
  if (!isNodeRuntime()) return undefined;
  const { createRequire } = await import(/* @vite-ignore */ 'node:module' as string) as typeof import('node:module');
  const { pathToFileURL } = await import(/* @vite-ignore */ 'node:url' as string) as typeof import('node:url');
  const bases: string[] = [];
  // CJS build: __filename exists. ESM build and vitest: import.meta.url.
  if (typeof __filename === 'string') bases.push(__filename);
  try {
    const url = import.meta.url;
    if (typeof url === 'string' && url.length > 0) bases.push(url);
  } catch {
    // import.meta is unavailable in some CJS transpilations.
  }
  bases.push(pathToFileURL(`${process.cwd()}/`).href);
  for (const base of bases) {
    try {
      return createRequire(base).resolve(specifier);
    } catch {
      // try the next base
    }
  }
  return undefined;
}

/** Whether a file exists (Node only; `false` elsewhere). */
export async function fileExists(path: string): Promise<boolean> {
  if (!isNodeRuntime()) return false;
  const fs = await import(/* @vite-ignore */ 'node:fs' as string) as typeof import('node:fs');
  return fs.existsSync(path);
}
