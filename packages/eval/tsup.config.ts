import { defineConfig } from 'tsup';

export default defineConfig({
  // src/cli.ts is the `mllm-eval` binary (dist/cli.js keeps its `#!/usr/bin/env node` line).
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm', 'cjs'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'es2022',
  external: [/^@tensorflow\//, /^@mllm\//, 'webgpu'],
});
