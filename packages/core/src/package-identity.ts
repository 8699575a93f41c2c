/**
 * Which copy of `@mllm/core` is loaded, and whether the module packages got the core they were
 * released with.
 *
 * `setSeed`'s generator and `initBackend`'s state (the chosen backend, the kernels and gradients it
 * registered) are module-level state of one copy of this package. When a project ends up with two
 * copies (two versions that npm could not dedupe, or the ESM and the CommonJS build of one install
 * loaded side by side), a module package built on the other copy silently stops following
 * `setSeed`. Every copy therefore registers itself, at import, in a process-wide registry under
 * `Symbol.for('@mllm/core')` (version + the file it was loaded from), and the second copy to load
 * prints one warning naming both.
 */
import { version as packageVersion } from '../package.json';

/** The version of this copy of `@mllm/core` (its package.json `version`, inlined at build time). */
export const CORE_VERSION: string = packageVersion;

/** One loaded copy of `@mllm/core`. */
export interface LoadedCore {
  /** Its package version. */
  readonly version: string;
  /** The file it was loaded from (a path or a URL; `'unknown location'` where neither is available). */
  readonly location: string;
}

/** The process-wide registry every copy of `@mllm/core` writes itself into. */
export interface CoreRegistry {
  /** Every copy loaded so far, in load order. */
  copies: LoadedCore[];
  /** Whether the two-copies warning was printed already (once per process). */
  warnedDuplicate: boolean;
  /** Module packages already warned about an older core of the same release line. */
  warnedDependents: string[];
}

/** Key of the registry on `globalThis`; `Symbol.for` so that every copy finds the same one. */
export const CORE_REGISTRY_KEY: unique symbol = Symbol.for('@mllm/core');

/** The registry on `globalThis` (created on first use). */
export function coreRegistry(): CoreRegistry {
  const holder = globalThis as unknown as Record<symbol, CoreRegistry | undefined>;
  let registry = holder[CORE_REGISTRY_KEY];
  if (!registry || !Array.isArray(registry.copies)) {
    registry = { copies: [], warnedDuplicate: false, warnedDependents: [] };
    holder[CORE_REGISTRY_KEY] = registry;
  }
  return registry;
}

/** Every copy of `@mllm/core` loaded in this process (this realm: each worker thread has its own). */
export function loadedCoreCopies(): readonly LoadedCore[] {
  return coreRegistry().copies.slice();
}

declare const __filename: string | undefined;

/** The file this module was loaded from: `__filename` in the CommonJS build, `import.meta.url` otherwise. */
function thisLocation(): string {
  if (typeof __filename === 'string') return __filename;
  try {
    const url = import.meta.url;
    if (typeof url === 'string' && url.length > 0) return url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  } catch {
    // import.meta is unavailable in this transpilation
  }
  return 'unknown location';
}

/** The package directory of a loaded file: everything before its `/dist/` or `/src/` folder. */
function packageDirectory(location: string): string {
  const match = /^(.*)[/\\](?:dist|src)[/\\][^]*$/.exec(location);
  return match ? match[1]! : location;
}

/**
 * Records `copy` in `registry`; when another copy is there already, prints (once per process) what
 * both versions are, where they were loaded from, what is per copy and how to get one copy.
 * A copy loaded again from the same file (a test runner re-evaluating modules) is not a second copy.
 * Exported for tests; the package calls it once, at import.
 */
export function registerCoreCopy(copy: LoadedCore, registry: CoreRegistry = coreRegistry(), warn: (message: string) => void = console.warn): void {
  if (registry.copies.some((c) => c.location === copy.location && c.version === copy.version)) return;
  registry.copies.push(copy);
  if (registry.copies.length < 2 || registry.warnedDuplicate) return;
  registry.warnedDuplicate = true;
  warn(duplicateCoreMessage(registry.copies));
}

/** The two-copies warning for `copies` (at least two). */
export function duplicateCoreMessage(copies: readonly LoadedCore[]): string {
  const lines = copies.map((c) => `  @mllm/core ${c.version} from ${c.location}`);
  const sameInstall = copies.every((c) => c.version === copies[0]!.version && packageDirectory(c.location) === packageDirectory(copies[0]!.location));
  const cause = sameInstall
    ? 'They are the ESM and the CommonJS build of one install: something `import`s @mllm/core and something else `require`s it. Load it one way only.'
    : 'Install one version: the @mllm packages are released together at one version, so give every @mllm package the same version in package.json, ' +
      'then `npm dedupe` (or `pnpm dedupe`); `npm ls @mllm/core` shows which package pulls which copy.';
  return [
    `@mllm/core is loaded ${copies.length} times in this process:`,
    ...lines,
    'Each copy has its own setSeed generator and its own backend state (initBackend\'s choice, the kernels and gradients it registered): ' +
      'setSeed on one copy does not seed the modules built on the other, so runs stop being reproducible.',
    cause,
  ].join('\n');
}

/** `major.minor.patch` of a version (a prerelease or build suffix is ignored); throws on anything else. */
function parseVersion(version: string, what: string): [number, number, number] {
  const match = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(version.trim());
  if (!match) throw new Error(`${what} must be a semver version like 1.2.3, got ${JSON.stringify(version)}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/**
 * Whether `version` satisfies the caret range `^base` (npm's rule: same major and not older; for
 * 0.x the same minor, for 0.0.x the same patch). Prerelease suffixes are ignored.
 */
export function satisfiesCaret(version: string, base: string): boolean {
  const v = parseVersion(version, 'version');
  const b = parseVersion(base, 'base');
  return sameReleaseLine(v, b) && compare(v, b) >= 0;
}

/** Same caret line: same major; for 0.x the same minor; for 0.0.x the same patch. */
function sameReleaseLine(v: [number, number, number], b: [number, number, number]): boolean {
  if (v[0] !== b[0]) return false;
  if (b[0] > 0) return true;
  if (v[1] !== b[1]) return false;
  return b[1] > 0 || v[2] === b[2];
}

function compare(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** What {@link requireCoreVersion} found: `'ok'`, `'older'` (warned) — an incompatible core throws. */
export type CoreVersionCheck = 'ok' | 'older';

/**
 * Called by each module package (`@mllm/parrot`, `@mllm/wings`, `@mllm/vpgc`) when it is imported,
 * with its own name and version: the `@mllm/core` it imported must satisfy `^<its version>` (the
 * packages are released together at one version, see docs/releasing.md).
 *
 * - Satisfied: returns `'ok'`.
 * - Another release line (another major; for 0.x another minor): **throws**. A 0.x minor changes
 *   the contract the module is built on (the `Module` class, hooks, state-dict names), so going on
 *   would fail later with an error that names neither package. The message says which versions
 *   met, where this core was loaded from, and the install command that aligns them.
 * - The same line but an older core (e.g. core 0.2.0 under a module 0.2.3): **warns once** per
 *   module package and returns `'older'`: it likely works, but fixes the module relies on may be
 *   missing.
 *
 * npm only enforces the published peer range at install time, and pnpm (by default) and
 * `npm --legacy-peer-deps` let a mismatch through; this is the check that always runs.
 * `core` defaults to this copy; `warn` defaults to `console.warn`.
 */
export function requireCoreVersion(
  dependent: string,
  dependentVersion: string,
  core: LoadedCore = { version: CORE_VERSION, location: thisLocation() },
  warn: (message: string) => void = console.warn,
  registry: CoreRegistry = coreRegistry(),
): CoreVersionCheck {
  if (typeof dependent !== 'string' || dependent.length === 0) {
    throw new Error(`requireCoreVersion: dependent must be a package name, got ${JSON.stringify(dependent)}`);
  }
  const d = parseVersion(dependentVersion, `requireCoreVersion: the version of ${dependent}`);
  const c = parseVersion(core.version, 'requireCoreVersion: the @mllm/core version');
  if (satisfiesCaret(core.version, dependentVersion)) return 'ok';
  const align = `npm install ${dependent}@${core.version} @mllm/core@${core.version}`;
  if (!sameReleaseLine(c, d)) {
    throw new Error(
      `${dependent} ${dependentVersion} needs @mllm/core ^${dependentVersion}, but the @mllm/core it imported is ${core.version} ` +
        `(from ${core.location}). The @mllm packages are released together at one version and a ${d[0] === 0 ? '0.x minor' : 'major'} ` +
        `changes the contract between them. Install matching versions, e.g. \`${align}\` (or \`npm install ${dependent}@latest @mllm/core@latest\`).`,
    );
  }
  if (!registry.warnedDependents.includes(dependent)) {
    registry.warnedDependents.push(dependent);
    warn(
      `${dependent} ${dependentVersion} was released with @mllm/core ${dependentVersion}; the @mllm/core it imported is the older ` +
        `${core.version} (from ${core.location}), which may lack fixes it relies on. Run \`npm install @mllm/core@${dependentVersion}\`.`,
    );
  }
  return 'older';
}

registerCoreCopy({ version: CORE_VERSION, location: thisLocation() });
