import { defineConfig } from 'tsup';
import { baseOptions } from '../../tsup.base.js';

export default defineConfig({
  ...baseOptions,
  entry: ['src/index.ts', 'src/testing/index.ts', 'src/image/index.ts'],
  // `testing/` imports the host classes by relative path: splitting (esbuild's default for ESM,
  // opt-in for CJS) puts them in one shared chunk, so `tinyHost()` returns the same `HostMLLM`
  // class as `@mllm/models` in both formats (no second copy for `instanceof` to trip on).
  splitting: true,
});
