/**
 * One benchmark run of every module against (a) the same backend's plain 2-D matMul at equal FLOPs and
 * (b) the same module in PyTorch (bench/reference/*.py, 2 threads), on this machine, and (c) PyTorch's own module
 * throughput against its own plain matMul on the same reference shape (how close the reference framework gets).
 *
 *   pnpm bench [--backends wasm,cpu,webgpu] [--modules parrot,wings,vpgc] [--cpu-size small|full]
 *              [--repeats 1] [--no-torch] [--json out.json] [--memory-7b] [--llava-real [--bunny /path/to/Bunny]]
 *
 * The module timings come from the packages' own bench scripts (packages/{parrot,wings,vpgc}/bench/*.bench.ts,
 * run as child processes, their tables parsed) plus bench/vpgc-train.bench.ts (VPG-C forward+backward).
 * Sizes: ParrotMoE D = I = 1024, E = 6, N = 577, T = 64; Wings learners + router H = 1024, r = 64,
 * 16 heads, L = 256 with 64 image tokens; VPG-C hook BLIP-2 Q-Former, Dl = 1024, 1 and 4 images.
 * The cpu backend runs ~0.6 GFLOP/s, so by default it uses the small sizes (Parrot D = I = 128, VPG-C
 * 6 × 384 Q-Former and 1 image; Wings has one size) — `--cpu-size full` asks for the full ones (tens of minutes).
 * `--memory-7b` adds bench/parrot-7b-memory.ts (a D = I = 4096 ParrotMoE saved as shards, loaded and run
 * once on wasm; peak memory against its float32 weights; ~1 min, 1.2 GB of temporary files).
 * `--llava-real` adds bench/llava-real.ts: a Qwen2-0.5B-shaped LLaVA (CLIP ViT-B/16 tower) saved as BF16 shards,
 * loaded per backend (wasm, cpu) in a fresh process (peak memory against its float32 weights), a prompt with one
 * image prefilled and decoded, beside PyTorch on the same files (needs a Bunny clone: `--bunny` or
 * MLLM_BUNNY_DIR; ~4.5 GB of memory, 1.2 GB of temporary files; tens of minutes on a busy 2-core machine, most
 * of it the cpu backend's prefill).
 * webgpu (Node Dawn) is SwiftShader on a machine without a GPU: it runs only when asked, at small sizes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = '/usr/bin/python3'; // Debian's python3-torch; `python3` on PATH may lack torch

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const list = (value: string | undefined, fallback: string[]) => value?.split(',').map((s) => s.trim()).filter(Boolean) ?? fallback;
const backends = list(flag('backends'), ['wasm', 'cpu']);
const modules = list(flag('modules'), ['parrot', 'wings', 'vpgc']);
const cpuSize = flag('cpu-size') ?? 'small';
const repeats = Number(flag('repeats') ?? 1);
const withTorch = !process.argv.includes('--no-torch');
for (const b of backends) if (!['cpu', 'wasm', 'webgpu'].includes(b)) throw new Error(`--backends: unknown backend '${b}' (cpu, wasm, webgpu)`);
for (const m of modules) if (!['parrot', 'wings', 'vpgc'].includes(m)) throw new Error(`--modules: unknown module '${m}' (parrot, wings, vpgc)`);
if (!['small', 'full'].includes(cpuSize)) throw new Error(`--cpu-size must be small or full, got '${cpuSize}'`);
if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats must be a positive integer, got ${flag('repeats')}`);

/** One measured row of the final table. */
interface Row {
  module: string;
  size: string;
  backend: string;
  pass: 'forward' | 'forward+backward';
  ms: number;
  gflops: number;
  /** The backend's plain 2-D matMul throughput measured by the module's bench. */
  matMulGflops: number;
  torchMs?: number;
  /** PyTorch's own plain 2-D matMul rate on the same reference shape (`matmul_gflops` of bench/reference). */
  torchMatMulGflops?: number;
  note?: string;
}
const rows: Row[] = [];
const skipped: string[] = [];

function tsx(script: string, args: string[], tsconfig = 'bench/tsconfig.json', env: Record<string, string> = {}): string {
  const started = performance.now();
  const result = spawnSync('npx', ['tsx', '--tsconfig', tsconfig, script, ...args], {
    cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=8192', ...env },
  });
  const seconds = ((performance.now() - started) / 1e3).toFixed(0);
  if (result.status !== 0) throw new Error(`${script} ${args.join(' ')} failed (${result.status}):\n${result.stderr.slice(-2000)}`);
  console.error(`  ran ${path.basename(script)} ${args.join(' ')} (${seconds} s)`);
  return result.stdout;
}

/** Data rows of the markdown tables a bench script prints, as cell arrays. */
function tableRows(output: string, backend: string): string[][] {
  const lines = [...new Set(output.split('\n').filter((l) => l.startsWith(`| ${backend} |`)))]; // progress lines repeat the final table
  return lines.map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
}

interface TorchResult { forward_ms: number; forward_backward_ms: number; matmul_gflops?: number }
const torchCache = new Map<string, TorchResult | null>();
function torch(script: string, args: string[]): TorchResult | null {
  if (!withTorch) return null;
  const key = `${script} ${args.join(' ')}`;
  if (torchCache.has(key)) return torchCache.get(key)!;
  let value: TorchResult | null = null;
  try {
    const out = execFileSync(PYTHON, [script, ...args], {
      cwd: path.join(root, 'bench/reference'), encoding: 'utf8', env: { ...process.env, BENCH_REPEATS: String(Math.max(2, repeats)), BENCH_WARMUP: '1' },
    });
    value = JSON.parse(out.trim().split('\n').pop()!) as TorchResult;
    console.error(`  ran PyTorch ${key}`);
  } catch (error) {
    skipped.push(`PyTorch ${key}: ${(error as Error).message.split('\n')[0]}`);
  }
  torchCache.set(key, value);
  return value;
}

/** XNNPACK threads the wasm children run (initBackend's default `auto`: the cores, up to 8). */
const wasmThreads = process.env.MLLM_WASM_THREADS && process.env.MLLM_WASM_THREADS !== 'auto'
  ? Number(process.env.MLLM_WASM_THREADS)
  : Math.min(8, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
const backendLabel = (backend: string) => (backend === 'wasm' ? `wasm (${wasmThreads} thread${wasmThreads > 1 ? 's' : ''})` : backend);

function benchParrot(backend: string): void {
  const size = backend === 'wasm' || (backend === 'cpu' && cpuSize === 'full') ? 'full' : 'small';
  const strategies = backend === 'cpu' ? 'separate' : 'separate,stacked';
  const D = size === 'full' ? 1024 : 128;
  const ref = torch('parrot_moe.py', [String(D), String(D), '6', '577', '64']);
  const addRows = (out: string, label: string) => {
    for (const [, sizeLabel, strategy, fwdMs, fwdG, trainMs, trainG, plainG] of tableRows(out, backend)) {
      const module = strategy!.includes('threads') ? `ParrotMoE (separate, expert threads: ${strategy!.replace('separate, ', '')})` : `ParrotMoE (${strategy})`;
      const common = { module, size: sizeLabel!, backend: label, matMulGflops: Number(plainG) };
      rows.push({ ...common, pass: 'forward', ms: Number(fwdMs), gflops: Number(fwdG), torchMs: ref?.forward_ms, torchMatMulGflops: ref?.matmul_gflops });
      rows.push({ ...common, pass: 'forward+backward', ms: Number(trainMs), gflops: Number(trainG), torchMs: ref?.forward_backward_ms, torchMatMulGflops: ref?.matmul_gflops });
    }
  };
  const args = ['--backends', backend, '--sizes', size, '--repeats', String(repeats)];
  addRows(tsx('packages/parrot/bench/moe.bench.ts', [...args, '--strategies', strategies], 'packages/parrot/bench/tsconfig.json'), backendLabel(backend));
  if (backend === 'wasm' && wasmThreads > 1) {
    // One-thread wasm, without and with expert threads (ExpertThreads, @mllm/parrot/threads).
    const out = tsx('packages/parrot/bench/moe.bench.ts', [...args, '--strategies', 'separate', '--threads', '1'], 'packages/parrot/bench/tsconfig.json', { MLLM_WASM_THREADS: '1' });
    addRows(out, 'wasm (1 thread)');
  }
}

function benchWings(backend: string): void {
  if (backend === 'webgpu') {
    skipped.push('Wings on webgpu: its bench has one (full) size, far too slow on SwiftShader');
    return;
  }
  const runs = backend === 'cpu' ? repeats : Math.max(12, 4 * repeats); // ~0.1 s per run on wasm: enough runs that the best is not a disturbed one
  const out = tsx('packages/wings/bench/learners.bench.ts', ['--backends', backend, '--runs', String(runs)], 'packages/wings/bench/tsconfig.json');
  const ref = torch('wings_learners.py', ['1024', '16', '64', '256', '64']);
  for (const [, pass, , ms, gflops, , matMulG] of tableRows(out, backend)) {
    const isForward = pass === 'forward';
    rows.push({
      module: 'Wings learners + router', size: 'H=1024, r=64, 16 heads, L=256 (64 image)', backend: backendLabel(backend),
      pass: isForward ? 'forward' : 'forward+backward', ms: Number(ms), gflops: Number(gflops), matMulGflops: Number(matMulG),
      torchMs: isForward ? ref?.forward_ms : ref?.forward_backward_ms, torchMatMulGflops: ref?.matmul_gflops,
    });
  }
}

function benchVpgc(backend: string): void {
  const size = backend === 'wasm' || (backend === 'cpu' && cpuSize === 'full') ? 'blip2' : 'small';
  const iterations = String(backend === 'cpu' ? Math.max(2, repeats) : Math.max(5, repeats)); // wasm: 0.25–1.5 s each; more tries, less noise
  const images = backend === 'cpu' && cpuSize === 'small' ? '1' : '1,4'; // cpu: ~0.5 GFLOP/s
  const forward = tsx('packages/vpgc/bench/hook.bench.ts', ['--backends', backend, '--size', size, '--images', images, '--iterations', iterations]);
  const train = tsx('bench/vpgc-train.bench.ts', ['--backends', backend, '--size', size, '--images', images, '--iterations', iterations])
    .split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { images: number; forwardBackwardMs: number; forwardBackward: number });
  for (const [, qformer, images, , hookMs, hookG, , , matMulG] of tableRows(forward, backend)) {
    const n = Number(images);
    const ref = torch('vpgc_hook.py', [String(n), size]);
    const common = { module: `VPG-C hook (${n} image${n > 1 ? 's' : ''})`, size: `${qformer}, Dl=1024`, backend: backendLabel(backend), matMulGflops: Number(matMulG), torchMatMulGflops: ref?.matmul_gflops };
    rows.push({ ...common, pass: 'forward', ms: Number(hookMs), gflops: Number(hookG), torchMs: ref?.forward_ms });
    const t = train.find((r) => r.images === n);
    if (t) {
      rows.push({
        ...common, pass: 'forward+backward', ms: t.forwardBackwardMs, gflops: t.forwardBackward / t.forwardBackwardMs / 1e6,
        torchMs: ref?.forward_backward_ms, note: 'matMul rate from the forward run',
      });
    }
  }
}

function machine(): string {
  let model = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const lscpu = execFileSync('lscpu', { encoding: 'utf8' });
    model = /Model name:\s*(.+)/.exec(lscpu)?.[1]?.trim() ?? model;
  } catch { /* lscpu missing: keep os.cpus() */ }
  let torchVersion = 'not run';
  if (withTorch) {
    try {
      torchVersion = execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__, torch.__config__.parallel_info().splitlines()[0] if hasattr(torch.__config__, "parallel_info") else "")'], { encoding: 'utf8' }).trim();
    } catch { torchVersion = 'unavailable'; }
  }
  const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  return `${model}, ${os.cpus().length} cores, Node ${process.version}, PyTorch ${torchVersion} (2 threads), load average at start ${load}`;
}

const header = machine();
console.log(`Machine: ${header}`);
for (const backend of backends) {
  for (const module of modules) {
    if (backend === 'webgpu' && module === 'parrot') {
      skipped.push('ParrotMoE on webgpu: run packages/parrot/bench/moe.bench.ts --backends webgpu --sizes small (SwiftShader here)');
      continue;
    }
    try {
      if (module === 'parrot') benchParrot(backend);
      if (module === 'wings') benchWings(backend);
      if (module === 'vpgc') {
        if (backend === 'webgpu') skipped.push('VPG-C on webgpu: SwiftShader here (run packages/vpgc/bench/hook.bench.ts --backends webgpu --size small)');
        else benchVpgc(backend);
      }
    } catch (error) {
      skipped.push(`${module} on ${backend}: ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`);
    }
  }
}

/**
 * PyTorch's module throughput (the row's matMul FLOPs over PyTorch's time) against PyTorch's own plain
 * matMul rate: how close the reference framework itself gets to its ceiling on the same module.
 */
function torchModuleRatio(r: Row): number | undefined {
  if (!r.torchMs || !r.torchMatMulGflops) return undefined;
  return (r.gflops * r.ms) / r.torchMs / r.torchMatMulGflops;
}
const f = (x: number | undefined, digits = 1) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const lines = [
  '| module | size | backend | pass | @mllm ms | GFLOP/s | backend 2-D matMul GFLOP/s | module / matMul throughput | PyTorch ms | @mllm / PyTorch time | PyTorch module / PyTorch matMul |',
  '|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.module} | ${r.size} | ${r.backend} | ${r.pass} | ${f(r.ms)} | ${f(r.gflops, 2)} | ${f(r.matMulGflops, 2)} | ${f(r.gflops / r.matMulGflops, 2)} | ${f(r.torchMs)} | ${r.torchMs ? f(r.ms / r.torchMs, 2) : '–'} | ${f(torchModuleRatio(r), 2)} |`),
];
console.log(`\n${lines.join('\n')}`);
if (skipped.length) console.log(`\nSkipped / not measured:\n${skipped.map((s) => `- ${s}`).join('\n')}`);
if (process.argv.includes('--memory-7b')) {
  const out = tsx('bench/parrot-7b-memory.ts', ['--backend', 'wasm']);
  console.log(`\n${out.split('\n').filter((l) => l.startsWith('|') || l.startsWith('Parrot-7B')).join('\n')}`);
}
if (process.argv.includes('--llava-real')) {
  const bunny = flag('bunny');
  const out = tsx('bench/llava-real.ts', [...(bunny ? ['--bunny', bunny] : []), ...(withTorch ? [] : ['--no-torch'])]);
  console.log(`\n${out.split('\n').filter((l) => l.startsWith('|') || l.startsWith('LLaVA') || l.startsWith('- ')).join('\n')}`);
}
const jsonPath = flag('json');
if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ machine: header, rows, skipped }, null, 2));
