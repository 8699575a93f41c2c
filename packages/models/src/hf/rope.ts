/**
 * Rotary tables of an HF decoder with its `rope_scaling` (one table per forward, shared by all layers).
 * With `f_i = θ^(−2i/d)` (`i < d/2`):
 *
 *   none:     angle = pos·f_i
 *   linear:   angle = (pos / factor)·f_i
 *   dynamic:  with n = max(positions) + 1 over the batch, when n > max_position_embeddings
 *             θ' = θ·(factor·n / max_position_embeddings − (factor − 1))^(d / (d − 2)), angle = pos·θ'^(−2i/d)
 *   llama3:   λ_i = 2π / f_i; λ_i < orig/high: f_i;  λ_i > orig/low: f_i / factor;
 *             else (1 − s)·f_i/factor + s·f_i,  s = (orig/λ_i − low) / (high − low)
 *
 * Dynamic NTK here is a function of each call's positions. HF's module keeps the largest frequencies it
 * has computed in a buffer (it never shrinks back), so after one long call HF also scales shorter ones:
 * the two agree on any call whose positions reach at least as far as every earlier call's (a growing
 * generation does). Keys already in a KV cache keep the rotation they were cached with, as in HF.
 */
import * as tf from '@tensorflow/tfjs-core';
import { rotaryCosSinFromInvFreq, rotaryInvFreq } from '@mllm/core';
import type { ResolvedHFDecoderConfig } from './config.js';

/** The float32 `inv_freq` of a config's scaling (`maxPosition`: the batch's largest position, for `dynamic`). */
export function hfRotaryInvFreq(config: ResolvedHFDecoderConfig, maxPosition = 0): Float32Array {
  const { headDim: d, ropeTheta: theta, ropeScaling: s } = config;
  if (s.type === 'dynamic') {
    const n = maxPosition + 1;
    if (n <= config.maxPositionEmbeddings) return rotaryInvFreq(d, theta);
    // HF computes the grown base in float64 (Python scalars), then the powers in float32.
    const base = theta * Math.pow((s.factor * n) / config.maxPositionEmbeddings - (s.factor - 1), d / (d - 2));
    return rotaryInvFreq(d, base);
  }
  const invFreq = rotaryInvFreq(d, theta);
  if (s.type !== 'llama3') return invFreq;
  const lowWavelength = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelength = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  const out = new Float32Array(invFreq.length);
  invFreq.forEach((f, i) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < highWavelength) out[i] = f; // high frequencies: unchanged
    else if (wavelength > lowWavelength) out[i] = f / s.factor; // low frequencies: interpolated by factor
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = (1 - smooth) * (f / s.factor) + smooth * f;
    }
  });
  return out;
}

/**
 * `positions [B, L]` (with `maxPosition` their largest value, read by the caller from the host array it
 * built them from) → `{ cos, sin }` each `[B, 1, L, headDim]` for the config's scaling.
 */
export function hfRotaryTables(
  config: ResolvedHFDecoderConfig,
  positions: tf.Tensor2D,
  maxPosition: number,
): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  const s = config.ropeScaling;
  return rotaryCosSinFromInvFreq(positions, hfRotaryInvFreq(config, maxPosition), s.type === 'linear' ? s.factor : 1);
}
