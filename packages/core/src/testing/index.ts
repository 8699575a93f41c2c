/**
 * `@mllm/core/testing`: helpers for testing tfjs code on every backend — which backend the test
 * run uses, float64 comparisons with per-backend tolerances, tensor-leak checks, numerical gradient
 * checks, in-memory tfjs-layers `model.save` / `loadLayersModel` round trips, and the float64 reference kit (`float64.ts`) the packages' reference maths build on.
 * Framework-agnostic (failures throw plain Errors); the vitest wiring (one project per backend, setup
 * file, per-backend summary) lives in the repository's root `vitest.config.ts`.
 */
export {
  testBackend,
  skipOnBackend,
  backendTolerance,
  BACKEND_TOLERANCES,
  TEST_BACKEND_ENV_VARIABLE,
  type Tolerance,
} from './test-backend.js';
export { expectClose, toFloat64, readNumeric, type ExpectCloseOptions, type Numeric, type NestedNumbers } from './expect-close.js';
export { expectNoLeaks, withLeakCheck, collectTensors } from './leak-check.js';
export { saveLayersModelInMemory, decodeSavedWeights, reloadLayersModel, randomizeLayersModelWeights } from './layers-io.js';
export {
  checkGradients,
  checkVariableGradients,
  type GradientCheckOptions,
  type GradientCheckReport,
} from './check-gradients.js';
export {
  randomArray,
  randomMatrix,
  unflatten,
  linear64,
  add64,
  erf64,
  gelu64,
  silu64,
  softmax64,
  layerNorm64,
  rmsNorm64,
  rope64,
  attention64,
  maxRelativeError,
  centralDifferences64,
  type Matrix,
  type FlatValues,
} from './float64.js';
