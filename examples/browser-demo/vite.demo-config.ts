/**
 * The demo's Vite configuration, as a function so the tests can start a server on another
 * checkpoint directory. No CDN, no network: the tfjs wasm binaries are served from
 * node_modules at `/tfjs-wasm/` (emitted into the build), the checkpoint directory at `/checkpoint/`
 * (copied into the build when it exists).
 */
import { existsSync, readdirSync, readFileSync, statSync, createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connect, Plugin, UserConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const repository = resolve(here, '../..');

/** URL prefixes the page uses. */
export const WASM_URL_PREFIX = '/tfjs-wasm/';
export const CHECKPOINT_URL_PREFIX = '/checkpoint/';

/** Directory holding `tfjs-backend-wasm*.wasm` of the installed @tensorflow/tfjs-backend-wasm. */
export function tfjsWasmDirectory(): string {
  const packageJson = createRequire(join(here, 'package.json')).resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return join(dirname(packageJson), 'dist');
}

const CONTENT_TYPES: Record<string, string> = {
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.safetensors': 'application/octet-stream',
};

function contentType(file: string): string {
  const dot = file.lastIndexOf('.');
  return CONTENT_TYPES[dot >= 0 ? file.slice(dot) : ''] ?? 'application/octet-stream';
}

/** Serves the files of `directory` (flat, no subfolders) under `prefix`. */
function serveFlatDirectory(prefix: string, directory: () => string | null): Connect.NextHandleFunction {
  return (request, response, next) => {
    const url = request.url?.split('?')[0] ?? '';
    if (!url.startsWith(prefix)) return next();
    const dir = directory();
    const name = decodeURIComponent(url.slice(prefix.length));
    if (!dir || name.length === 0 || name.includes('/') || name.includes('\\') || name.startsWith('.')) return next();
    const file = join(dir, name);
    if (!existsSync(file) || !statSync(file).isFile()) {
      response.statusCode = 404;
      response.end(`not found: ${url}`);
      return;
    }
    response.setHeader('Content-Type', contentType(file));
    response.setHeader('Cache-Control', 'no-store');
    createReadStream(file).pipe(response);
  };
}

function listFiles(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir).filter((name) => keep(name) && statSync(join(dir, name)).isFile());
}

/** tfjs wasm binaries: served in dev/preview, emitted into the build. */
export function tfjsWasmPlugin(): Plugin {
  const dir = tfjsWasmDirectory();
  const isWasm = (name: string) => name.endsWith('.wasm');
  return {
    name: 'mllm-tfjs-wasm-binaries',
    configureServer(server) {
      server.middlewares.use(serveFlatDirectory(WASM_URL_PREFIX, () => dir));
    },
    configurePreviewServer(server) {
      server.middlewares.use(serveFlatDirectory(WASM_URL_PREFIX, () => dir));
    },
    generateBundle() {
      for (const name of listFiles(dir, isWasm)) {
        this.emitFile({ type: 'asset', fileName: `${WASM_URL_PREFIX.slice(1)}${name}`, source: readFileSync(join(dir, name)) });
      }
    },
  };
}

/** The demo checkpoint directory: served in dev/preview, copied into the build when present. */
export function checkpointPlugin(checkpointDir: string): Plugin {
  const present = () => (existsSync(checkpointDir) ? checkpointDir : null);
  const isCheckpointFile = (name: string) => /\.(json|safetensors)$/.test(name);
  return {
    name: 'mllm-demo-checkpoint',
    configureServer(server) {
      server.middlewares.use(serveFlatDirectory(CHECKPOINT_URL_PREFIX, present));
    },
    configurePreviewServer(server) {
      server.middlewares.use(serveFlatDirectory(CHECKPOINT_URL_PREFIX, present));
    },
    generateBundle() {
      if (!present()) {
        this.warn(`no demo checkpoint at ${checkpointDir}: the build has no /checkpoint/ (run the checkpoint script first)`);
        return;
      }
      for (const name of listFiles(checkpointDir, isCheckpointFile)) {
        this.emitFile({ type: 'asset', fileName: `${CHECKPOINT_URL_PREFIX.slice(1)}${name}`, source: readFileSync(join(checkpointDir, name)) });
      }
    },
  };
}

export interface DemoViteOptions {
  /** Checkpoint directory served at `/checkpoint/`. */
  checkpointDir: string;
  /** Build output directory (default `dist`). */
  outDir?: string;
}

/** Default checkpoint: `$MLLM_DEMO_CHECKPOINT`, else `out/demo-checkpoint` (written by `pnpm checkpoint`). */
export function defaultCheckpointDir(): string {
  return resolve(process.env.MLLM_DEMO_CHECKPOINT || join(here, 'out/demo-checkpoint'));
}

const TFJS_PACKAGES = [
  '@tensorflow/tfjs-core',
  '@tensorflow/tfjs-layers',
  '@tensorflow/tfjs-backend-cpu',
  '@tensorflow/tfjs-backend-wasm',
  '@tensorflow/tfjs-backend-webgpu',
];

export function demoViteConfig(options: DemoViteOptions): UserConfig {
  const source = (name: string) => join(repository, `packages/${name}/src/index.ts`);
  return {
    root: here,
    // the workspace packages are used from source (like the tests), so no build is needed
    resolve: {
      alias: {
        '@mllm/core': source('core'),
        '@mllm/parrot': source('parrot'),
        '@mllm/wings': source('wings'),
      },
      dedupe: TFJS_PACKAGES,
    },
    plugins: [tfjsWasmPlugin(), checkpointPlugin(options.checkpointDir)],
    optimizeDeps: {
      include: [...TFJS_PACKAGES, 'vega', 'vega-lite'],
    },
    server: { host: '127.0.0.1', fs: { allow: [repository] } },
    preview: { host: '127.0.0.1' },
    build: {
      target: 'es2022',
      outDir: options.outDir ?? 'dist',
      emptyOutDir: true,
      chunkSizeWarningLimit: 4000,
      rollupOptions: {
        input: { main: join(here, 'index.html'), checks: join(here, 'checks.html') },
      },
    },
    clearScreen: false,
  };
}
