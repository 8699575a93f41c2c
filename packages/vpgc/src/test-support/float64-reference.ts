/**
 * Independent float64 re-implementation of the Q-Former and the VPG-C hook for tests: plain JS loops
 * over Float64Arrays, written from the LAVIS/Cheetah math, no tf. Parameters are read by their
 * reference names in PyTorch layout (Linear weight `[out, in]`). Scalar math (GELU) from core's
 * float64 kit; the Q-Former keeps flat Float64Array rows for its size.
 */
import { gelu64 } from '@mllm/core/testing';


/** A tensor as flat float64 data with a shape. */
export interface F64 {
  shape: number[];
  data: Float64Array;
}

export type ParamsF64 = Map<string, F64>;

export function f64(shape: number[], data: ArrayLike<number>): F64 {
  const size = shape.reduce((a, b) => a * b, 1);
  if (data.length !== size) throw new Error(`f64: ${data.length} values for shape [${shape}]`);
  return { shape: [...shape], data: Float64Array.from(data) };
}

function param(params: ParamsF64, name: string): F64 {
  const value = params.get(name);
  if (!value) throw new Error(`float64 reference: missing parameter ${name}`);
  return value;
}

/** rows `[M, K]` · Wᵀ (`W` `[out, K]`) + b → `[M, out]`. */
export function linear64(x: Float64Array, M: number, K: number, weight: F64, bias: F64 | null): Float64Array {
  const [out, inFeatures] = weight.shape;
  if (inFeatures !== K) throw new Error(`linear64: weight [${weight.shape}] vs input width ${K}`);
  const y = new Float64Array(M * out);
  for (let m = 0; m < M; m++) {
    for (let o = 0; o < out; o++) {
      let s = bias ? bias.data[o] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * weight.data[o * K + k];
      y[m * out + o] = s;
    }
  }
  return y;
}

export function layerNorm64(x: Float64Array, M: number, D: number, weight: F64, bias: F64, eps: number): Float64Array {
  const y = new Float64Array(M * D);
  for (let m = 0; m < M; m++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[m * D + d];
    mean /= D;
    let variance = 0;
    for (let d = 0; d < D; d++) variance += (x[m * D + d] - mean) ** 2;
    variance /= D;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let d = 0; d < D; d++) y[m * D + d] = (x[m * D + d] - mean) * inv * weight.data[d] + bias.data[d];
  }
  return y;
}

export interface QFormerShape {
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  encoderWidth: number;
  crossAttentionFreq: number;
  layerNormEps: number;
}

/** BertAttention: LN(dense(MHA(x, c)) + x); returns output [Lq, D] and probs [heads][Lq][Lk]. */
function attention64(
  params: ParamsF64,
  prefix: string,
  x: Float64Array,
  Lq: number,
  source: Float64Array,
  Lk: number,
  sourceWidth: number,
  c: QFormerShape,
): { output: Float64Array; probs: Float64Array } {
  const D = c.hiddenSize;
  const h = c.numAttentionHeads;
  const d = D / h;
  const q = linear64(x, Lq, D, param(params, `${prefix}.self.query.weight`), param(params, `${prefix}.self.query.bias`));
  const k = linear64(source, Lk, sourceWidth, param(params, `${prefix}.self.key.weight`), param(params, `${prefix}.self.key.bias`));
  const v = linear64(source, Lk, sourceWidth, param(params, `${prefix}.self.value.weight`), param(params, `${prefix}.self.value.bias`));
  const context = new Float64Array(Lq * D);
  const probs = new Float64Array(h * Lq * Lk);
  for (let head = 0; head < h; head++) {
    for (let i = 0; i < Lq; i++) {
      const scores = new Float64Array(Lk);
      let max = -Infinity;
      for (let j = 0; j < Lk; j++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += q[i * D + head * d + e] * k[j * D + head * d + e];
        scores[j] = s / Math.sqrt(d);
        max = Math.max(max, scores[j]);
      }
      let total = 0;
      for (let j = 0; j < Lk; j++) {
        scores[j] = Math.exp(scores[j] - max);
        total += scores[j];
      }
      for (let j = 0; j < Lk; j++) {
        const p = scores[j] / total;
        probs[(head * Lq + i) * Lk + j] = p;
        for (let e = 0; e < d; e++) context[i * D + head * d + e] += p * v[j * D + head * d + e];
      }
    }
  }
  const dense = linear64(context, Lq, D, param(params, `${prefix}.output.dense.weight`), param(params, `${prefix}.output.dense.bias`));
  for (let i = 0; i < dense.length; i++) dense[i] += x[i];
  const output = layerNorm64(dense, Lq, D, param(params, `${prefix}.output.LayerNorm.weight`), param(params, `${prefix}.output.LayerNorm.bias`), c.layerNormEps);
  return { output, probs };
}

/**
 * Q-Former on one image: queries `[Nq, D]`, features `[Nv, Dv]` (already `ln_vision`-ed) → output
 * `[Nq, D]` and the cross-attention mass per image token (mean over layers, heads, queries), `[Nv]`.
 * `prefix` is where `bert.…` starts (e.g. `Qformer.`).
 */
export function qformer64(
  params: ParamsF64,
  prefix: string,
  c: QFormerShape,
  queries: Float64Array,
  Nq: number,
  features: Float64Array,
  Nv: number,
): { output: Float64Array; attentionMass: Float64Array } {
  const D = c.hiddenSize;
  let h = layerNorm64(queries, Nq, D, param(params, `${prefix}bert.embeddings.LayerNorm.weight`), param(params, `${prefix}bert.embeddings.LayerNorm.bias`), c.layerNormEps);
  const mass = new Float64Array(Nv);
  let crossLayers = 0;
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const layer = `${prefix}bert.encoder.layer.${l}`;
    h = attention64(params, `${layer}.attention`, h, Nq, h, Nq, D, c).output;
    if (l % c.crossAttentionFreq === 0) {
      const cross = attention64(params, `${layer}.crossattention`, h, Nq, features, Nv, c.encoderWidth, c);
      h = cross.output;
      crossLayers++;
      const heads = c.numAttentionHeads;
      for (let head = 0; head < heads; head++) {
        for (let i = 0; i < Nq; i++) for (let j = 0; j < Nv; j++) mass[j] += cross.probs[(head * Nq + i) * Nv + j] / (heads * Nq);
      }
    }
    const F = param(params, `${layer}.intermediate_query.dense.weight`).shape[0];
    const inner = linear64(h, Nq, D, param(params, `${layer}.intermediate_query.dense.weight`), param(params, `${layer}.intermediate_query.dense.bias`)).map(gelu64);
    const out = linear64(inner, Nq, F, param(params, `${layer}.output_query.dense.weight`), param(params, `${layer}.output_query.dense.bias`));
    for (let i = 0; i < out.length; i++) out[i] += h[i];
    h = layerNorm64(out, Nq, D, param(params, `${layer}.output_query.LayerNorm.weight`), param(params, `${layer}.output_query.LayerNorm.bias`), c.layerNormEps);
  }
  for (let j = 0; j < Nv; j++) mass[j] /= crossLayers;
  return { output: h, attentionMass: mass };
}

/** ln_vision (eps 1e-5) when present in `params`, else identity. features `[Nv, Dv]`. */
export function lnVision64(params: ParamsF64, features: Float64Array, Nv: number, Dv: number): Float64Array {
  const weight = params.get('ln_vision.weight');
  if (!weight) return features.slice();
  return layerNorm64(features, Nv, Dv, weight, param(params, 'ln_vision.bias'), 1e-5);
}

/** VPG forward for one image: features `[Nv, Dv]` → image tokens `[Nq, H]`. */
export function vpg64(params: ParamsF64, c: QFormerShape, features: Float64Array, Nv: number): Float64Array {
  const queries = param(params, 'query_tokens');
  const Nq = queries.shape[1];
  const x = lnVision64(params, features, Nv, c.encoderWidth);
  const o = qformer64(params, 'Qformer.', c, queries.data, Nq, x, Nv).output;
  return linear64(o, Nq, c.hiddenSize, param(params, 'llama_proj.weight'), param(params, 'llama_proj.bias'));
}

export interface HookInputs64 {
  /** `[B, L, H]` */
  hidden: Float64Array;
  B: number;
  L: number;
  H: number;
  lastPromptIndex: number[];
  /** Per image `[Nv, Dv]` raw features. */
  images: Float64Array[];
  Nv: number;
  imageToSample: number[];
  /** Per image its start position (length = Nq). */
  imageStart: number[];
}

/**
 * The VPG-C hook in float64 (Cheetah `LlamaModel.forward` block at `idx == update_layer`):
 * returns the new hidden `[B, L, H]`. VPG-C tensors under `llama_model.model.*`.
 */
export function vpgcHook64(params: ParamsF64, c: QFormerShape, input: HookInputs64): Float64Array {
  const { B, L, H } = input;
  const Dq = c.hiddenSize;
  const queries = param(params, 'llama_model.model.query_tokens');
  const Nq = queries.shape[1];
  const out = input.hidden.slice();
  const guidance: Float64Array[] = [];
  for (let b = 0; b < B; b++) {
    const token = input.hidden.slice((b * L + input.lastPromptIndex[b]) * H, (b * L + input.lastPromptIndex[b] + 1) * H);
    guidance.push(linear64(token, 1, H, param(params, 'llama_model.model.qformer_proj.weight'), param(params, 'llama_model.model.qformer_proj.bias')));
  }
  input.images.forEach((features, k) => {
    const b = input.imageToSample[k];
    const q = new Float64Array(Nq * Dq);
    for (let i = 0; i < Nq; i++) for (let e = 0; e < Dq; e++) q[i * Dq + e] = queries.data[i * Dq + e] + guidance[b][e];
    const x = lnVision64(params, features, input.Nv, c.encoderWidth);
    const o = qformer64(params, 'Qformer.', c, q, Nq, x, input.Nv).output;
    const r = linear64(o, Nq, Dq, param(params, 'llama_model.model.llm_proj.weight'), param(params, 'llama_model.model.llm_proj.bias'));
    for (let t = 0; t < Nq; t++) for (let e = 0; e < H; e++) out[(b * L + input.imageStart[k] + t) * H + e] += r[t * H + e];
  });
  return out;
}

/**
 * Inputs of the linear VPG-C hook in float64: those of `vpgcHook64`, with `images` the features fed to the
 * projector (`[Nv, Dv]` each) and each image's span `Nv` tokens long (one token per feature row).
 */
export interface LinearHookInputs64 extends HookInputs64 {
  /** Width of the features fed to the projector. */
  Dv: number;
}

/**
 * The paper's linear-VPG variant of VPG-C in float64, in its own column notation: with
 * `X ∈ R^{Dv×Nv}` (columns = tokens), `V̄ = (W1 g 1ᵀ) ⊙ (W2 X) ∈ R^{H×Nv}`, column j added to image
 * token j. `g` is the raw hidden state at the last prompt token; `W1 = <prefix>guidance_proj.weight`
 * `[H, H]`, `W2 = <prefix>visual_proj.weight` `[H, Dv]`. Returns the new hidden `[B, L, H]`.
 */
export function linearVpgcHook64(params: ParamsF64, input: LinearHookInputs64, prefix = 'model.'): Float64Array {
  const { B, L, H, Nv, Dv } = input;
  const W1 = param(params, `${prefix}guidance_proj.weight`);
  const W2 = param(params, `${prefix}visual_proj.weight`);
  const out = input.hidden.slice();
  // W1 g 1ᵀ: the same column W1·g for every token of the sample's images.
  const gate: Float64Array[] = [];
  for (let b = 0; b < B; b++) {
    const g = input.hidden.subarray((b * L + input.lastPromptIndex[b]) * H, (b * L + input.lastPromptIndex[b] + 1) * H);
    const column = new Float64Array(H);
    for (let i = 0; i < H; i++) for (let e = 0; e < H; e++) column[i] += W1.data[i * H + e] * g[e];
    gate.push(column);
  }
  input.images.forEach((features, k) => {
    const b = input.imageToSample[k];
    for (let j = 0; j < Nv; j++) {
      for (let i = 0; i < H; i++) {
        let w2x = 0; // (W2 X)[i, j] = Σ_d W2[i, d]·X[d, j], X[d, j] = features[j][d]
        for (let d = 0; d < Dv; d++) w2x += W2.data[i * Dv + d] * features[j * Dv + d];
        out[(b * L + input.imageStart[k] + j) * H + i] += gate[b][i] * w2x;
      }
    }
  });
  return out;
}
