import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/threads.ts', 'src/expert-worker.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  external: [/^@tensorflow\//, /^@mllm\//, 'webgpu'],
});
