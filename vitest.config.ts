import { defineConfig } from 'vitest/config';

// One workspace config: every package's *.test.ts runs against its source (no build needed),
// @mllm/* imports resolve to the sibling package's src through the "source" alias below.
import { fileURLToPath } from 'node:url';
const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@mllm/core/testing': fileURLToPath(new URL('./packages/core/src/testing/index.ts', import.meta.url)),
      '@mllm/core': pkg('core'),
      '@mllm/parrot': pkg('parrot'),
      '@mllm/eval': pkg('eval'),
      '@mllm/wings': pkg('wings'),
      '@mllm/vpgc': pkg('vpgc'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
