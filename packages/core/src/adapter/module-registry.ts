/**
 * Module kinds by name, so a file that says `"module_type": "wings"` can be attached without the
 * loader knowing the Wings package: each module package registers its kind when imported
 * (`import '@mllm/wings'`), and `resolveModuleKind` imports the recorded package in Node when it
 * has not been imported yet. The registry lives in `@mllm/core`, which is why a user's tree must
 * hold one copy of it (the module packages take it as a peer dependency).
 */
import type { AttachedModule, ModuleRecord } from './attached-module.js';
import type { ModuleHost } from './module-host.js';

/** A module kind (one per module package). */
export interface ModuleKind {
  /** `module_type` in saved files (`parrot`, `wings`, `vpgc`). */
  readonly type: string;
  /** npm package defining it. */
  readonly packageName: string;
  /** That package's version. */
  readonly version: string;
  /**
   * Attach a fresh module built from a record's reference-named `config` (weights are loaded
   * afterwards by the caller). Must validate `config` and throw a clear error on bad fields.
   */
  attachFromRecord(host: ModuleHost, record: ModuleRecord): AttachedModule;
}

const kinds = new Map<string, ModuleKind>();

/** Register (or replace, e.g. after a hot reload) a module kind. */
export function registerModuleKind(kind: ModuleKind): void {
  if (!kind || typeof kind.type !== 'string' || !kind.type || typeof kind.attachFromRecord !== 'function') {
    throw new Error('registerModuleKind: kind must have a non-empty string `type` and an `attachFromRecord` function');
  }
  kinds.set(kind.type, kind);
}

/** The registered kind named `type`, or undefined. */
export function moduleKind(type: string): ModuleKind | undefined {
  return kinds.get(type);
}

/** Names of the registered kinds. */
export function registeredModuleKinds(): string[] {
  return [...kinds.keys()].sort();
}

const importPackage = (specifier: string): Promise<unknown> => import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);

/**
 * The kind a record names: registered already, or registered by importing `record.module_package`
 * (Node; in a browser bundle import the package yourself). Throws a message that says what to import.
 */
/**
 * Look `type` up in `table`, importing `pkg` first when it is missing and is an `@mllm/*` package
 * name (a file cannot make the loader import anything else).
 */
async function lookUpOrImport<K>(table: Map<string, K>, record: Pick<ModuleRecord, 'module_type' | 'module_package'>, what: string, owner: string): Promise<K> {
  const known = table.get(record.module_type);
  if (known) return known;
  const pkg = record.module_package;
  let importError: unknown;
  if (typeof pkg === 'string' && /^@mllm\/[a-z0-9-]+$/.test(pkg)) {
    try {
      await importPackage(pkg);
    } catch (error) {
      importError = error;
    }
    const registered = table.get(record.module_type);
    if (registered) return registered;
  }
  const why = importError ? ` (importing ${pkg} failed: ${(importError as Error).message})` : '';
  throw new Error(
    `${owner}: the file records a '${record.module_type}' ${what} from ${JSON.stringify(pkg)}, which is not registered${why}. ` +
      `Install it and import it before loading (import '${pkg}'); registered: ${[...table.keys()].sort().join(', ') || 'none'}`,
  );
}

/**
 * The kind a record names: registered already, or registered by importing `record.module_package`
 * (Node; in a browser bundle import the package yourself). Throws a message that says what to import.
 */
export function resolveModuleKind(record: Pick<ModuleRecord, 'module_type' | 'module_package'>, owner = 'resolveModuleKind'): Promise<ModuleKind> {
  return lookUpOrImport(kinds, record, 'module', owner);
}

/**
 * A visual projector other than the host's default `mlp2x_gelu` (e.g. @mllm/vpgc's Q-Former VPG),
 * so a host saved with it records it and rebuilds it on load.
 */
export interface ProjectorKind {
  /** `module_type` in a saved host's `config.json` (`projector` field). */
  readonly type: string;
  readonly packageName: string;
  readonly version: string;
  /** The record of `projector` when it is of this kind, otherwise null. */
  recordOf(projector: unknown): ModuleRecord | null;
  /** A fresh projector from a record (weights are loaded afterwards by the caller). */
  build(record: ModuleRecord): unknown;
}

const projectorKinds = new Map<string, ProjectorKind>();

/** Register (or replace) a projector kind. */
export function registerProjectorKind(kind: ProjectorKind): void {
  if (!kind || typeof kind.type !== 'string' || !kind.type || typeof kind.recordOf !== 'function' || typeof kind.build !== 'function') {
    throw new Error('registerProjectorKind: kind must have a non-empty string `type` and `recordOf` / `build` functions');
  }
  projectorKinds.set(kind.type, kind);
}

/** The record of `projector` by the first registered kind that recognises it, or null. */
export function projectorRecord(projector: unknown): ModuleRecord | null {
  for (const kind of projectorKinds.values()) {
    const record = kind.recordOf(projector);
    if (record) return record;
  }
  return null;
}

/** The projector kind a record names (importing its `@mllm/*` package in Node when needed). */
export function resolveProjectorKind(record: Pick<ModuleRecord, 'module_type' | 'module_package'>, owner = 'resolveProjectorKind'): Promise<ProjectorKind> {
  return lookUpOrImport(projectorKinds, record, 'projector', owner);
}
