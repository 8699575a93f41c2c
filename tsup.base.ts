import type { Options } from 'tsup';

/**
 * Build options shared by every @mllm package: ESM + CJS with declarations, source maps, ES2022, and
 * tfjs / other @mllm packages / the `webgpu` binding left as imports (peers, never bundled: one copy
 * of tfjs' kernel registry and of each @mllm module in a user's tree). Each package's
 * `tsup.config.ts` adds only its entries.
 */
export const baseOptions = {
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  external: [/^@tensorflow\//, /^@mllm\//, 'webgpu'],
} satisfies Options;
