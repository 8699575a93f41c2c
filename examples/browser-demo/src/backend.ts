/**
 * Backend start-up for the pages: WebGPU first, WebAssembly when WebGPU cannot start (with the
 * reason shown to the user), cpu as the last resort. The backend packages are imported here so
 * their factories are registered with tfjs before core's `initBackend` looks them up (core's own
 * dynamic imports of bare package names cannot resolve in a browser).
 */
// Chained tensor methods (\`x.neg()\`, \`x.reshape()\`): tfjs-core's browser build registers them only
// when imported; the Node bundle always has them, and @mllm code still uses a few of them.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgpu'; // registers 'webgpu' when navigator.gpu exists
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { describeBackendChoice, initBackend, type BackendChoice } from '@mllm/core';

/** Where the Vite plugin serves the wasm binaries (see vite.demo-config.ts). */
export const WASM_PATHS = `${import.meta.env.BASE_URL}tfjs-wasm/`;

export type PageBackend = 'webgpu' | 'wasm' | 'cpu';

export interface StartedBackend {
  backend: PageBackend;
  /** Shown to the user when the page is not on WebGPU (why), else null. */
  notice: string | null;
  /** The adapter, e.g. `google swiftshader (software fallback)`. */
  adapter: string | null;
  /** Every backend tried and why it did (not) start. */
  details: string;
}

let wasmPathsSet = false;

/** Starts one backend by name (throws with tfjs' reason when it cannot). */
export async function startNamedBackend(name: PageBackend): Promise<BackendChoice> {
  if (name === 'wasm' && !wasmPathsSet) {
    // core's initBackend passes `wasmPaths` to setWasmPaths only when its own import of the wasm
    // package succeeds, which it cannot in a browser: set them here.
    setWasmPaths(WASM_PATHS);
    wasmPathsSet = true;
  }
  return initBackend(name, { wasmPaths: WASM_PATHS });
}

function adapterText(choice: BackendChoice): string | null {
  const a = choice.webgpuAdapter;
  if (!a) return null;
  const name = [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unnamed adapter';
  return `${name} (${a.isFallbackAdapter ? 'software fallback' : 'hardware'})`;
}

/**
 * WebGPU, else wasm, else cpu. `preferred` 'wasm' or 'cpu' skips the better ones (URL `?backend=`).
 */
export async function startPageBackend(preferred: PageBackend = 'webgpu'): Promise<StartedBackend> {
  const order: PageBackend[] = preferred === 'webgpu' ? ['webgpu', 'wasm', 'cpu'] : preferred === 'wasm' ? ['wasm', 'cpu'] : ['cpu'];
  const failures: string[] = [];
  if (preferred !== 'webgpu') failures.push(`WebGPU not tried (?backend=${preferred})`);
  for (const name of order) {
    try {
      const choice = await startNamedBackend(name);
      const notice = name === 'webgpu' ? null : `Running on ${name === 'wasm' ? 'WebAssembly (wasm)' : 'plain JavaScript (cpu)'}: ${failures.join('; ')}`;
      return { backend: name, notice, adapter: adapterText(choice), details: describeBackendChoice(choice) };
    } catch (error) {
      failures.push(`${name} could not start: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  throw new Error(`no backend could start: ${failures.join('; ')}`);
}
