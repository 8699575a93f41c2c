/**
 * A host saved with its modules loads back with one call, in-process (`loadHostModel(dir)`, no
 * options) and through the eval CLI (`mllm-eval --model dir`): host + Parrot, host + Wings (stage 2),
 * host + VPG-C (Q-Former VPG projector), host + all three. Every weight is randomised first, so a
 * module whose load were skipped would change the logits.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict, setSeed, stateDict, type ModuleRecord } from '@mllm/core';
import { randomArray, skipOnBackend, testBackend } from '@mllm/core/testing';
import { HostMLLM, loadHostModel, saveHostModel, type MultimodalBatch } from '@mllm/models';
import { attachParrot } from '@mllm/parrot';
import { attachWings } from '@mllm/wings';
import { QFormerVPG, attachVPGC } from '@mllm/vpgc';
import { runCli } from './cli-main.js';
import { registerModelLoader } from './eval-model.js';
import { adaptHostModel } from './host-model-adapter.js';
import { writeTsv, type BenchmarkRowInput } from './tsv-writer.js';

const H = 16;
const directory = mkdtempSync(join(tmpdir(), 'mllm-eval-saved-host-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

type Variant = 'parrot' | 'wings' | 'vpgc' | 'all';

/**
 * A tiny host (cls_patch vision features, which Parrot routes on), with a Q-Former VPG projector
 * when VPG-C is attached, and the variant's modules attached in the order Parrot, Wings, VPG-C.
 */
function hostWith(variant: Variant): HostMLLM {
  setSeed(5);
  const withVpgc = variant === 'vpgc' || variant === 'all';
  const projector = withVpgc
    ? new QFormerVPG({
        qformer: { hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 16, encoderWidth: 12 },
        numQueryTokens: 3,
        llmHiddenSize: H,
      })
    : undefined;
  const host = new HostMLLM({
    config: {
      text: { vocabSize: 262, hiddenSize: H, numLayers: 4, numHeads: 2, intermediateSize: 24, maxLength: 512 },
      vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16, selectFeature: 'cls_patch' },
    },
    projector,
  });
  if (variant === 'parrot' || variant === 'all') attachParrot(host, { intermediateSize: 24, numExperts: 3, moeWeight: 0.5 });
  if (variant === 'wings' || variant === 'all') attachWings(host, { stage: 2, rank: 3, routerMaxLength: 512, systemPromptLength: 1 });
  if (withVpgc) attachVPGC(host, { updateLayer: 1 });
  // Every parameter (base, projector, modules) random and nonzero: zero-initialised module weights
  // (Wings' LoRRA outputs, say) would otherwise leave the logits unchanged when a load is skipped.
  host.namedParameters().forEach(([, p], i) => {
    const shape = p.variable.shape as number[];
    const values = randomArray(1000 + i, shape.reduce((a, b) => a * b, 1), 0.4);
    tf.tidy(() => void p.variable.write(tf.tensor(values, shape, 'float32')));
  });
  return host;
}

function batchOf(host: HostMLLM): MultimodalBatch {
  const img = host.tokenizer.imageId;
  const pad = host.tokenizer.padId;
  const ids = [
    [72, 105, img, 120, 121, img, 123],
    [65, img, 67, 68, 69, pad, pad],
  ];
  return {
    inputIds: tf.tensor2d(ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(ids.map((row) => row.map((id) => (id === pad ? 0 : 1))), undefined, 'int32'),
    images: tf.randomUniform([3, 8, 8, 3], 0, 1, 'float32', 9) as tf.Tensor4D,
  };
}

/** The logits' float32 bytes (bitwise comparison). */
function logitBytes(host: HostMLLM, batch: MultimodalBatch): Buffer {
  const out = host.forward(batch);
  const bytes = Buffer.from(out.logits.dataSync<'float32'>().buffer.slice(0));
  tf.dispose([out.logits, out.attentionMask]);
  out.labels?.dispose();
  return bytes;
}

/** State-dict names (in order) and each value's bytes. */
function stateBytes(host: HostMLLM): [string, string][] {
  const dict = stateDict(host);
  const out = [...dict].map(([name, t]) => [name, Buffer.from(t.dataSync().buffer.slice(0)).toString('base64')] as [string, string]);
  disposeStateDict(dict);
  return out;
}

const records = (host: HostMLLM): (ModuleRecord | undefined)[] => host.hooks.map((hooks) => hooks.moduleRecord?.());

// A tiny MMMB-style benchmark: three questions on one 2×2 image.
const IMAGE = { height: 2, width: 2, data: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]) };
const rows: BenchmarkRowInput[] = [
  { index: 0, question: 'What colour?', options: { A: 'red', B: 'green' }, answer: 'A', category: 'c1', image: IMAGE },
  { index: 1, question: 'How many?', options: { A: 'one', B: 'two', C: 'three' }, answer: 'C', category: 'c1', image: { reference: 0 } },
  { index: 2, question: 'Which side?', options: { A: 'left', B: 'right' }, answer: 'B', category: 'c2', image: { reference: 0 } },
];
const tsvPath = join(directory, 'tiny_pt.tsv');
writeFileSync(tsvPath, writeTsv(rows));
const CLI_FLAGS = ['--no-progress', '--max-new-tokens', '3', tsvPath];

/** predictions.jsonl of a run (the fields that depend on the model, not on the run). */
function predictionsOf(outDir: string): unknown[] {
  return readFileSync(join(outDir, 'predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
}

async function runInProcess(argv: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const code = await runCli(argv, {
    stdout: { write: () => undefined },
    stderr: { write: (text: string) => err.push(text) },
    // The installed CLI imports @mllm/models itself; here it gets this checkout's loader.
    hostLoader: async () => loadHostModel,
  });
  return { code, err: err.join('') };
}

// Software WebGPU (the test machine's) runs these tiny hosts slowly: the round trip gets more time, and
// the CLI runs (generation over a benchmark, twice) stay on cpu and wasm.
const SLOW = testBackend() === 'webgpu';
const skipCli = skipOnBackend(['webgpu'], 'generation over a benchmark is too slow on software WebGPU; cpu and wasm run the CLI comparisons');

// The round trip is file I/O plus the modules' own (backend-tested) math: on software WebGPU only the
// host with all three modules runs it; the single-module hosts run on cpu and wasm.
const skipSingleOnWebgpu = (variant: Variant): boolean =>
  variant !== 'all' && skipOnBackend(['webgpu'], 'the all-three host covers the round trip on software WebGPU; cpu and wasm run each module alone');

const EXPECTED_TYPES: Record<Variant, string[]> = { parrot: ['parrot'], wings: ['wings'], vpgc: ['vpgc'], all: ['parrot', 'wings', 'vpgc'] };

describe.each(['parrot', 'wings', 'vpgc', 'all'] as const)('a host with %s attached, saved and reloaded with one call', (variant) => {
  it.skipIf(skipSingleOnWebgpu(variant))('reloads the same modules in the same order with the same weights: identical logits, state dict and generate()', async () => {
    const dir = join(directory, `saved-${variant}`);
    const host = hostWith(variant);
    const batch = batchOf(host);
    try {
      expect(records(host).map((r) => r?.module_type)).toEqual(EXPECTED_TYPES[variant]);
      await saveHostModel(host, dir);
      const before = tf.memory().numTensors;
      const loaded = await loadHostModel(dir);
      try {
        expect(records(loaded)).toEqual(records(host));
        expect(stateBytes(loaded)).toEqual(stateBytes(host));
        expect(logitBytes(loaded, batch).equals(logitBytes(host, batch))).toBe(true);
        const pixels = tf.slice(batch.images!, [0, 0, 0, 0], [1, 8, 8, 3]) as tf.Tensor4D;
        const prompt = '<image>\nWhat is in the picture?';
        const generated = loaded.generate(prompt, pixels, { maxNewTokens: 6 });
        expect(generated.tokenIds[0].length).toBeGreaterThan(0);
        expect(generated).toEqual(host.generate(prompt, pixels, { maxNewTokens: 6 }));
        pixels.dispose();
      } finally {
        loaded.dispose();
      }
      // The base alone (modules skipped) computes other logits: the comparison above sees the modules.
      const base = await loadHostModel(dir, { skipModules: true });
      expect(records(base)).toEqual([]);
      expect(logitBytes(base, batch).equals(logitBytes(host, batch))).toBe(false);
      base.dispose();
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      tf.dispose([batch.inputIds, batch.attentionMask!, batch.images!]);
      host.dispose();
    }
  }, SLOW ? 300_000 : 60_000);

  it.skipIf(skipCli)('mllm-eval --model <dir> gives the same predictions as the in-process model', async () => {
    const dir = join(directory, `cli-${variant}`);
    const host = hostWith(variant);
    await saveHostModel(host, dir);
    const saved = join(directory, `cli-${variant}-saved`);
    const fromDir = await runInProcess(['--model', dir, '--out', saved, ...CLI_FLAGS]);
    expect(fromDir.err).toBe('');
    expect(fromDir.code).toBe(0);

    const spec = `in-process:${variant}`;
    // The CLI disposes the model it evaluated: the host goes with it.
    const unregister = registerModelLoader((s) => (s === spec ? adaptHostModel(host, { maxNewTokens: 3 }) : undefined));
    const live = join(directory, `cli-${variant}-live`);
    try {
      const inProcess = await runInProcess(['--model', spec, '--out', live, ...CLI_FLAGS]);
      expect(inProcess.err).toBe('');
      expect(inProcess.code).toBe(0);
    } finally {
      unregister();
    }
    expect(predictionsOf(saved)).toHaveLength(3);
    expect(predictionsOf(saved)).toEqual(predictionsOf(live));
  }, 60_000);
});

describe('mllm-eval as a process loads a saved host with modules', () => {
  it.skipIf(skipCli)('imports the recorded module packages itself (core cannot see them under pnpm) and predicts like the in-process model', async () => {
    const dir = join(directory, 'process-all');
    const host = hostWith('all');
    await saveHostModel(host, dir);
    const spec = 'in-process:process-all';
    const unregister = registerModelLoader((s) => (s === spec ? adaptHostModel(host, { maxNewTokens: 3 }) : undefined));
    const live = join(directory, 'process-all-live');
    try {
      expect(await runInProcess(['--model', spec, '--out', live, ...CLI_FLAGS])).toEqual({ code: 0, err: '' });
    } finally {
      unregister();
    }
    // The bin entry run by Node: @mllm/models and the module packages resolve from packages/eval's
    // node_modules to their builds (`pnpm build` first), and @mllm/core's build has none of them beside it.
    const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));
    const out = join(directory, 'process-all-out');
    // On this test's backend, so the option scores agree bitwise.
    const argv = ['--import', 'tsx', cli, '--model', dir, '--backend', testBackend(), '--out', out, ...CLI_FLAGS];
    const { stderr } = await promisify(execFile)(process.execPath, argv, {
      cwd: fileURLToPath(new URL('../../..', import.meta.url)),
    });
    expect(stderr).toBe('');
    expect(predictionsOf(out)).toEqual(predictionsOf(live));
  }, 120_000);
});
