import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'es2022',
    external: [/^@tensorflow\//, /^@mllm\//, 'webgpu'],
  },
  {
    // The `mllm-eval` binary (ESM, keeps the `#!/usr/bin/env node` line).
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    dts: false,
    sourcemap: true,
    clean: false,
    target: 'es2022',
    external: [/^@tensorflow\//, /^@mllm\//, 'webgpu'],
  },
]);
