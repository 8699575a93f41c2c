/**
 * ParrotMoE benchmark: forward and forward+backward, achieved GFLOP/s, and the ratio to a plain
 * 2-D matMul rate on the same backend at equal FLOPs (see `plainMatMulGflops`).
 *
 *   npx tsx --tsconfig packages/parrot/bench/tsconfig.json packages/parrot/bench/moe.bench.ts \
 *     [--backends wasm,cpu,webgpu] [--sizes small,full] [--strategies separate,wide,stacked] [--repeats 2]
 *     [--threads 1]
 *
 * Sizes: `full` = Parrot-shaped D = I = 1024, E = 6, N = 577 (CLS + 24×24 patches), T = 64, B = 1;
 * `small` = the same with D = I = 128. Defaults finish in well under 3 minutes on 2 cores: wasm at
 * both sizes, cpu at `small` only (cpu runs ~1 GFLOP/s: a full-size cpu forward+backward takes minutes;
 * ask for it with `--backends cpu --sizes full`), `stacked` only on wasm at `small` (it is ~25× slower there).
 * webgpu runs when asked and available (through @mllm/core's `initBackend` when it provides one).
 *
 * `--threads N` (default 1 on cpu and wasm; 0 = off) adds a `separate` row with N expert worker
 * threads (`ExpertThreads` from `@mllm/parrot/threads`): the calling thread and N workers share the
 * experts. Its matMul baseline is (N + 1) × the one-thread rate (one plain matMul stream per thread).
 * Only where the backend itself runs one thread: cpu, and wasm with `MLLM_WASM_THREADS=1` (by default
 * wasm runs XNNPACK on every core, and its rows are then against the backend's multi-threaded matMul).
 *
 * Baseline: the 3·E expert products as bare `tf.matMul`s of the same shapes (forward, no gradient).
 * FLOPs counted: forward = 3·E·2·N·D·I (expert matMuls) + 4·T·D (attention, pooling) + 2·D·E (router);
 * forward+backward = 3 × the expert matMuls (each matMul has two gradient matMuls) + the small terms.
 */
import * as tf from '@tensorflow/tfjs';
import * as core from '@mllm/core';
import { ParrotMoE, type ExpertStrategy } from '@mllm/parrot';
import { ExpertThreads } from '@mllm/parrot/threads';

interface Size { name: string; D: number; I: number; E: number; N: number; T: number; B: number }
const SIZES: Record<string, Size> = {
  small: { name: 'small', D: 128, I: 128, E: 6, N: 577, T: 64, B: 1 },
  full: { name: 'full', D: 1024, I: 1024, E: 6, N: 577, T: 64, B: 1 },
};

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const list = (value: string | undefined) => value?.split(',').map((s) => s.trim()).filter(Boolean);
const requestedBackends = list(flag('backends')) ?? ['wasm', 'cpu'];
const requestedSizes = list(flag('sizes'));
const requestedStrategies = list(flag('strategies')) as ExpertStrategy[] | undefined;
const repeats = Number(flag('repeats') ?? 2);
const threadCount = Number(flag('threads') ?? 1);
if (!Number.isInteger(threadCount) || threadCount < 0) throw new Error(`--threads must be a non-negative integer, got ${flag('threads')}`);
for (const b of requestedBackends) if (!['cpu', 'wasm', 'webgpu'].includes(b)) throw new Error(`--backends: unknown backend '${b}' (cpu, wasm, webgpu)`);
for (const s of requestedSizes ?? []) if (!SIZES[s]) throw new Error(`--sizes: unknown size '${s}' (small, full)`);
for (const s of requestedStrategies ?? []) if (!['separate', 'wide', 'stacked'].includes(s)) throw new Error(`--strategies: unknown strategy '${s}'`);
if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats must be a positive integer, got ${flag('repeats')}`);

async function startBackend(name: string): Promise<boolean> {
  try {
    // wasm: XNNPACK threads from MLLM_WASM_THREADS (default auto: every core)
    await core.initBackend(core.parseBackendRequest(name), { allowFallbackAdapter: true, fastCpuKernels: true });
  } catch (error) {
    console.log(`${name}: not available (${(error as Error).message.split('\n')[0]})`);
    return false;
  }
  if (name === 'wasm') console.log(`wasm: ${await core.wasmBackendThreads()} XNNPACK thread(s)`);
  return tf.getBackend() === name;
}

async function timeBest(fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up (kernel compilation, buffer pools)
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

interface Row {
  backend: string; size: string; strategy: string; forwardMs: number; forwardGflops: number;
  trainMs: number; trainGflops: number; plainGflops: number;
}

/**
 * The same backend's plain 2-D matMul rate at equal FLOPs: the 3·E expert products as bare
 * `tf.matMul`s of the same shapes (`[B·N, D]·[D, I]` twice and `[B·N, I]·[I, D]` per expert).
 */
async function plainMatMulGflops(s: Size): Promise<number> {
  const x = tf.randomNormal([s.B * s.N, s.D]) as tf.Tensor2D;
  const h = tf.randomNormal([s.B * s.N, s.I]) as tf.Tensor2D;
  const kernels = Array.from({ length: s.E }, () => [tf.randomNormal([s.D, s.I]), tf.randomNormal([s.D, s.I]), tf.randomNormal([s.I, s.D])] as tf.Tensor2D[]);
  const ms = await timeBest(async () => {
    const outs = kernels.flatMap(([g, u, d]) => [tf.matMul(x, g), tf.matMul(x, u), tf.matMul(h, d)]);
    await Promise.all(outs.map((o) => o.data()));
    tf.dispose(outs);
  });
  tf.dispose([x, h, ...kernels.flat()]);
  return (3 * s.E * 2 * s.B * s.N * s.D * s.I) / (ms * 1e6);
}

async function benchOne(backend: string, s: Size, strategy: ExpertStrategy, plainGflops: number, workers = 0): Promise<Row> {
  core.setSeed(1);
  const moe = new ParrotMoE({ hiddenSize: s.D, intermediateSize: s.I, numExperts: s.E, expertStrategy: strategy });
  const threads = workers > 0 ? await ExpertThreads.start(moe, { workers }) : null;
  const initial = tf.randomNormal([s.B, s.N, s.D]);
  const visual = tf.variable(initial, true, `visual_${backend}_${s.name}_${strategy}`) as unknown as tf.Tensor3D;
  initial.dispose();
  const text = tf.randomNormal([s.B, s.T, s.D]) as tf.Tensor3D;
  const textMask = tf.ones([s.B, s.T]) as tf.Tensor2D;
  const expertFlops = 3 * s.E * 2 * s.B * s.N * s.D * s.I;
  const smallFlops = s.B * (4 * s.T * s.D + 2 * s.D * s.E);
  const forwardMs = await timeBest(async () => {
    const out = moe.forward({ visual, text, textMask });
    await out.output.data();
    tf.dispose([out.output, out.routingWeights, out.textAttention]);
  });
  const variables = [...moe.trainableVariables(), visual as unknown as tf.Variable];
  const trainMs = await timeBest(async () => {
    const { value, grads } = tf.variableGrads(() => tf.sum(moe.forward({ visual, text, textMask }).output) as tf.Scalar, variables);
    await Promise.all(Object.values(grads).map((g) => g.data()));
    tf.dispose([value, ...Object.values(grads)]);
  });
  tf.dispose([visual, text, textMask]);
  await threads?.close();
  moe.dispose();
  return {
    backend, size: `${s.name} (D=I=${s.D})`, strategy: workers > 0 ? `${strategy}, ${workers + 1} threads` : strategy, forwardMs,
    forwardGflops: (expertFlops + smallFlops) / (forwardMs * 1e6),
    trainMs, trainGflops: (3 * expertFlops + 3 * smallFlops) / (trainMs * 1e6), plainGflops: plainGflops * (workers + 1),
  };
}

const rows: Row[] = [];
for (const backend of requestedBackends) {
  if (!(await startBackend(backend))) continue;
  const sizes = requestedSizes ?? (backend === 'cpu' ? ['small'] : ['small', 'full']);
  for (const sizeName of sizes) {
    const s = SIZES[sizeName];
    const strategies = requestedStrategies ?? (sizeName === 'small' && backend !== 'cpu' ? ['separate', 'wide', 'stacked'] : ['separate', 'wide']);
    const plain = await plainMatMulGflops(s);
    for (const strategy of strategies as ExpertStrategy[]) {
      const before = tf.memory().numTensors;
      const row = await benchOne(backend, s, strategy, plain);
      if (tf.memory().numTensors !== before) throw new Error(`leak: ${tf.memory().numTensors - before} tensors (${backend} ${sizeName} ${strategy})`);
      rows.push(row);
      console.log(`${backend} ${row.size} ${strategy}: forward ${row.forwardMs.toFixed(1)} ms, forward+backward ${row.trainMs.toFixed(1)} ms`);
    }
    // Expert threads compete with XNNPACK's own threads for the cores: measured on one-thread wasm and cpu.
    const xnnpackThreads = backend === 'wasm' ? await core.wasmBackendThreads() : 1;
    if (threadCount > 0 && xnnpackThreads !== 1) console.log(`expert threads: skipped on wasm with ${xnnpackThreads} XNNPACK threads (MLLM_WASM_THREADS=1 to measure them)`);
    if (threadCount > 0 && xnnpackThreads === 1 && (backend === 'wasm' || backend === 'cpu') && (strategies as string[]).includes('separate')) {
      const before = tf.memory().numTensors;
      const row = await benchOne(backend, s, 'separate', plain, threadCount);
      if (tf.memory().numTensors !== before) throw new Error(`leak: ${tf.memory().numTensors - before} tensors (${backend} ${sizeName} threads)`);
      rows.push(row);
      console.log(`${backend} ${row.size} ${row.strategy}: forward ${row.forwardMs.toFixed(1)} ms, forward+backward ${row.trainMs.toFixed(1)} ms`);
    }
  }
}

const f = (x: number, d = 1) => x.toFixed(d);
console.log('\n| backend | size | experts | fwd ms | fwd GFLOP/s | fwd+bwd ms | fwd+bwd GFLOP/s | plain 2-D GFLOP/s | fwd ratio | fwd+bwd ratio |');
console.log('|---|---|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.backend} | ${r.size} | ${r.strategy} | ${f(r.forwardMs)} | ${f(r.forwardGflops, 2)} | ${f(r.trainMs)} | ${f(r.trainGflops, 2)} | ${f(r.plainGflops, 2)} | ${f(r.forwardGflops / r.plainGflops, 2)} | ${f(r.trainGflops / r.plainGflops, 2)} |`);
}
