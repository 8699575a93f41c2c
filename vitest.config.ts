import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// One workspace config: every package's *.test.ts runs against its source (no build needed),
// @mllm/* imports resolve to the sibling package's src through the aliases below.
//
// Every test file runs once per backend: the projects `cpu`, `wasm` and `webgpu` (Dawn; on a machine
// without a GPU through SwiftShader from Debian's chromium package) each set MLLM_TEST_BACKEND and
// start that backend in the setup file, which fails loudly if it cannot. The `tensorflow` project
// (tfjs-node) runs the whole suite when `@tensorflow/tfjs-node` is installed; otherwise it runs only
// the tfjs-node backend test, which reports itself skipped. Select backends with `--project`,
// e.g. `pnpm vitest run --project cpu`.
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const pkg = (name: string) => here(`./packages/${name}/src/index.ts`);
const setupFile = here('./tools/vitest/vitest-setup.ts');
const tensorflowBackendTest = 'packages/core/src/backend/tensorflow.test.ts';

function resolvable(specifier: string): boolean {
  try {
    createRequire(import.meta.url).resolve(specifier);
    return true;
  } catch {
    return false;
  }
}
const tfjsNodeInstalled = resolvable('@tensorflow/tfjs-node') || resolvable('@tensorflow/tfjs-node-gpu');

const testFiles = ['packages/*/src/**/*.test.ts', 'tools/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'examples/*/test/**/*.test.ts'];

// Note: `extends: true` merges arrays with the root config by concatenation, so `include` is set
// per project only.
const backendProject = (name: 'cpu' | 'wasm' | 'webgpu' | 'tensorflow') => ({
  extends: true as const,
  test: {
    name,
    include: testFiles,
    env: { MLLM_TEST_BACKEND: name },
    setupFiles: [setupFile],
    exclude: name === 'tensorflow' ? [] : [tensorflowBackendTest],
  },
});

export default defineConfig({
  resolve: {
    alias: {
      '@mllm/core/testing': here('./packages/core/src/testing/index.ts'),
      '@mllm/core': pkg('core'),
      '@mllm/models/testing': here('./packages/models/src/testing/index.ts'),
      '@mllm/models/image': here('./packages/models/src/image/index.ts'),
      '@mllm/models': pkg('models'),
      '@mllm/train': pkg('train'),
      '@mllm/parrot': pkg('parrot'),
      '@mllm/eval': pkg('eval'),
      '@mllm/wings': pkg('wings'),
      '@mllm/vpgc': pkg('vpgc'),
      '@mllm/pretrained': pkg('pretrained'),
    },
  },
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Test files share a worker's module cache: tfjs, the wasm module and the WebGPU device (with
    // its compiled shader pipelines) are loaded once per worker instead of once per file, which
    // makes the suite ~3-4× faster. The setup file still runs before every file and re-selects
    // the project's backend, so a file that switches backends cannot affect the next one.
    isolate: false,
    reporters: [here('./tools/vitest/vitest-backend-reporter.ts')],
    projects: [
      backendProject('cpu'),
      backendProject('wasm'),
      backendProject('webgpu'),
      tfjsNodeInstalled
        ? backendProject('tensorflow')
        : {
            extends: true as const,
            test: { name: 'tensorflow', env: { MLLM_TEST_BACKEND: 'tensorflow' }, include: [tensorflowBackendTest] },
          },
    ],
  },
});
