/** Outcome of trying to start one backend. */
export interface StartResult {
  /** Whether the backend is now tfjs' active backend. */
  ok: boolean;
  /** On success what it runs on (e.g. the adapter); on failure why it could not start. */
  why: string;
}

/**
 * The reason for an optional backend package that cannot be imported, with the command that installs
 * it, e.g. `@tensorflow/tfjs-backend-wasm is not installed: run \`npm install @tensorflow/tfjs-backend-wasm@4.22.0\``.
 * tfjs packages are pinned to the running `@tensorflow/tfjs-core` version (`version`), since tfjs
 * backends must match core exactly; other packages (Dawn's `webgpu`) are not pinned.
 * @param packageName the npm package
 * @param error why the import failed (kept, in parentheses, for the unusual case of an installed but broken package)
 * @param version the version to pin, or undefined for none
 */
export function notInstalled(packageName: string, error: string, version?: string): string {
  const spec = version === undefined ? packageName : `${packageName}@${version}`;
  return `${packageName} is not installed: run \`npm install ${spec}\` (${error})`;
}
