/**
 * Parrot-7B-sized MoE memory check: D = I = 4096, E = 6 (18 expert matrices of 4096², 1.21 GB of
 * float32 weights), N = 577 visual tokens, T = 64 text tokens. A writer process saves the weights as
 * sharded safetensors (core `saveShardedCheckpoint`, reference names and layout); a fresh process then
 * builds the module, loads the shards one at a time (core `loadShardedCheckpoint` with a per-shard
 * `filter`, `loadStateDict(..., {strict: false})`, the shard's tensors disposed right after), runs one
 * forward, and reports peak memory against the weights' size: peak RSS above the process's baseline
 * (`process.resourceUsage().maxRSS`), tfjs' `tf.memory().numBytes`, and on wasm the heap size (a wasm
 * heap never shrinks, so its size is the backend's peak).
 *
 *   npx tsx --tsconfig bench/tsconfig.json bench/parrot-7b-memory.ts [--backend wasm] [--dir /tmp/parrot-7b] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, parseBackendRequest, loadShardedCheckpoint, loadStateDict, readShardedIndex, saveShardedCheckpoint, setSeed, stateDict, disposeStateDict } from '@mllm/core';
import { ParrotMoE } from '@mllm/parrot';

const D = 4096;
const E = 6;
const N = 577;
const T = 64;
const SHARD_BYTES = 256 * 1024 * 1024;
const MB = 1024 * 1024;

function argument(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function write(dir: string): Promise<void> {
  await initBackend('cpu', { fastCpuKernels: true });
  setSeed(7);
  const moe = new ParrotMoE({ hiddenSize: D, intermediateSize: D, numExperts: E });
  const tensors = stateDict(moe); // reference names, PyTorch layout
  moe.dispose();
  const saved = await saveShardedCheckpoint(dir, tensors, { maxShardBytes: SHARD_BYTES });
  disposeStateDict(tensors);
  console.log(JSON.stringify({ shards: saved.shardFiles.length, totalBytes: saved.totalSize }));
}

async function measure(dir: string, backend: string): Promise<void> {
  await initBackend(parseBackendRequest(backend), { fastCpuKernels: true }); // the kernels docs/performance.md measures
  const baselineRss = process.memoryUsage().rss;
  const started = performance.now();
  const heap = () => (backend === 'wasm' ? (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length : 0);
  const trace: string[] = [];
  const mark = (label: string) => trace.push(`${label}: rss ${(process.memoryUsage().rss / MB).toFixed(0)} MB, tf ${(tf.memory().numBytes / MB).toFixed(0)} MB, heap ${(heap() / MB).toFixed(0)} MB`);
  const moe = new ParrotMoE({ hiddenSize: D, intermediateSize: D, numExperts: E });
  mark('constructed');
  const weightBytes = moe.parameterCount() * 4;
  const index = await readShardedIndex(path.join(dir, 'model.safetensors.index.json'));
  const shards = [...new Set(index.weightMap.values())];
  for (const shard of shards) {
    const { tensors } = await loadShardedCheckpoint(dir, { filter: (name) => index.weightMap.get(name) === shard });
    loadStateDict(moe, tensors, { strict: false });
    tf.dispose([...tensors.values()]);
    mark(`loaded ${shard}`);
  }
  const loadedMs = performance.now() - started;
  const afterLoad = tf.memory().numBytes;
  const visual = tf.randomNormal([1, N, D]) as tf.Tensor3D;
  const text = tf.randomNormal([1, T, D]) as tf.Tensor3D;
  const textMask = tf.ones([1, T]) as tf.Tensor2D;
  const t0 = performance.now();
  const out = moe.forward({ visual, text, textMask });
  await out.output.data();
  const forwardMs = performance.now() - t0;
  const peakTfBytes = Math.max(afterLoad, tf.memory().numBytes);
  tf.dispose([out.output, out.routingWeights, out.textAttention, visual, text, textMask]);
  const wasmHeap = backend === 'wasm' ? (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length : undefined;
  const peakRss = process.resourceUsage().maxRSS * 1024;
  moe.dispose();
  console.log(JSON.stringify({
    backend, weightBytes, shards: shards.length, loadMs: Math.round(loadedMs), forwardMs: Math.round(forwardMs),
    trace, baselineRss, peakRss, peakAboveBaseline: peakRss - baselineRss, tfBytesAfterLoad: afterLoad, peakTfBytes, wasmHeap,
  }));
}

function child(args: string[]): string {
  const script = fileURLToPath(import.meta.url);
  const root = path.resolve(path.dirname(script), '..');
  const result = spawnSync('npx', ['tsx', '--tsconfig', 'bench/tsconfig.json', script, ...args], {
    cwd: root, encoding: 'utf8', maxBuffer: 16 * MB, env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=12288' },
  });
  if (result.status !== 0) throw new Error(`parrot-7b-memory ${args.join(' ')} failed:\n${result.stderr.slice(-3000)}`);
  return result.stdout.trim().split('\n').pop()!;
}

async function main(): Promise<void> {
  const mode = argument('mode');
  const backend = argument('backend') ?? 'wasm';
  if (mode === 'write') return write(argument('dir')!);
  if (mode === 'measure') return measure(argument('dir')!, backend);
  if (mode === 'write-only') return console.log(child(['--mode', 'write', '--dir', argument('dir')!]));
  const dir = argument('dir') ?? mkdtempSync(path.join(os.tmpdir(), 'parrot-7b-'));
  try {
    const written = JSON.parse(child(['--mode', 'write', '--dir', dir])) as { shards: number; totalBytes: number };
    const r = JSON.parse(child(['--mode', 'measure', '--dir', dir, '--backend', backend])) as Record<string, number>;
    const ratio = r.peakAboveBaseline! / r.weightBytes!;
    console.log(`Parrot-7B-sized MoE (D = I = ${D}, E = ${E}, N = ${N}) on ${backend}: ${written.shards} shards, ${(written.totalBytes / MB).toFixed(0)} MB`);
    console.log('| weights MB | load s | forward s | peak RSS above baseline MB | × weights | tf bytes after load MB | wasm heap MB | target ≤ 1.5× |');
    console.log('|---:|---:|---:|---:|---:|---:|---:|---|');
    console.log(`| ${(r.weightBytes! / MB).toFixed(0)} | ${(r.loadMs! / 1e3).toFixed(1)} | ${(r.forwardMs! / 1e3).toFixed(1)} | ${(r.peakAboveBaseline! / MB).toFixed(0)} | ${ratio.toFixed(2)} | ${(r.tfBytesAfterLoad! / MB).toFixed(0)} | ${r.wasmHeap ? (r.wasmHeap / MB).toFixed(0) : '–'} | ${ratio <= 1.5 ? 'met' : 'not met'} |`);
  } finally {
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
