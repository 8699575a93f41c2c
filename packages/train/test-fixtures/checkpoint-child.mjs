// Child process of checkpoint-faults.test.ts, against the built @mllm/core and @mllm/train (dist).
//
// `train <dir> <steps>`: trains a small MLP (cpu backend, fixed seeds) to <steps> optimizer steps
// with a checkpoint into <dir> after every step, resuming strictly from <dir> first when a
// checkpoint is there. With MLLM_KILL_AT_OP=k it SIGKILLs itself at the k-th file-system
// operation after the resume (open, write, sync, close, rename, rm, mkdir, link, writeFile,
// readdir, stat, unlink: every step of a save, renames included), before that operation or, with
// MLLM_KILL_AFTER=1, right after it. Prints one JSON line: the step it started from, the number of
// operations counted, and the final parameters (float32 bits), or {refused: message} (exit 3);
// MLLM_TRACE_OPS=1 adds the names of the counted operations in order.
//
// `write <dir> <id> <rounds>`: a concurrent writer: each round saves a model whose every weight is
// id·1000 + round (trainer state step = round) into <dir>, then reads <dir> back and checks it is
// one writer's one round throughout. Prints {saves, checked, mixed, refused}.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as core from '@mllm/core';
import * as train from '@mllm/train';

const { Linear, Module, SeededRandom, loadStateDict, setSeed } = core;
const { AdamW, Trainer, resumeFromCheckpoint, saveCheckpoint } = train;

await tf.setBackend('cpu');
const [mode, dir, third, fourth] = process.argv.slice(2);

class TinyMlp extends Module {
  static className = 'TinyMlp';
  constructor() {
    super({});
    this.fc1 = this.addModule('fc1', new Linear({ inFeatures: 3, outFeatures: 6 }));
    this.fc2 = this.addModule('fc2', new Linear({ inFeatures: 6, outFeatures: 2 }));
  }
  forward(x) {
    return this.fc2.forward(tf.relu(this.fc1.forward(x)));
  }
}

function fixedMatrix(rows, cols, seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
  return Array.from({ length: rows }, () => Array.from({ length: cols }, next));
}

let counting = false;
let operations = 0;
const trace = process.env.MLLM_TRACE_OPS === '1' ? [] : null;
const killAt = Number(process.env.MLLM_KILL_AT_OP ?? 0);
const killAfter = process.env.MLLM_KILL_AFTER === '1';
function countOperation() {
  if (!counting) return;
  operations += 1;
  if (operations === killAt && !killAfter) process.kill(process.pid, 'SIGKILL');
}
function afterOperation() {
  if (counting && operations === killAt && killAfter) process.kill(process.pid, 'SIGKILL');
}
function wrap(target, name) {
  const original = target[name];
  target[name] = async function (...args) {
    if (counting) trace?.push(name);
    countOperation();
    const result = await original.apply(this, args);
    afterOperation();
    return result;
  };
}
if (killAt > 0 || mode === 'train') {
  for (const name of ['open', 'rename', 'rm', 'mkdir', 'link', 'writeFile', 'readdir', 'stat', 'unlink']) wrap(fs.promises, name);
  syncBuiltinESMExports(); // the ESM namespace of node:fs/promises now sees the wrappers
  const probe = await fs.promises.open(process.execPath, 'r');
  const handleProto = Object.getPrototypeOf(probe);
  await probe.close();
  for (const name of ['write', 'writeFile', 'sync', 'close']) wrap(handleProto, name);
}

if (mode === 'train') {
  const steps = Number(fourth ?? third);
  const dataX = fixedMatrix(16, 3, 11);
  const dataY = fixedMatrix(16, 2, 12);
  setSeed(1);
  const model = new TinyMlp();
  const optimizer = new AdamW(model, { lr: 0.03, weightDecay: 0.05 });
  const trainer = new Trainer({ model, optimizer, progress: false, maxGradNorm: 0.5, rng: new SeededRandom(5) });
  let from = 0;
  try {
    const { trainerState } = await resumeFromCheckpoint(dir, { model, optimizer, trainer });
    from = trainerState.step;
  } catch (error) {
    // A fresh start only when nothing was saved yet. (Builds before checkpoint sets had no
    // CheckpointError: there a missing model file, ENOENT, is the fresh start; for the 'before' figures.)
    const nothingSaved = train.CheckpointError
      ? error instanceof train.CheckpointError && /does not exist/.test(error.message)
      : /ENOENT|is missing/.test(error.message);
    if (!nothingSaved) {
      console.log(JSON.stringify({ refused: error.message }));
      process.exit(3);
    }
  }
  counting = true;
  await trainer.fit({
    steps,
    batches: (_step, _micro, rng) => {
      const rows = [rng.nextInt(16), rng.nextInt(16)];
      return { x: tf.tensor2d(rows.map((r) => dataX[r])), y: tf.tensor2d(rows.map((r) => dataY[r])) };
    },
    lossFn: (b) => tf.mean(tf.square(tf.sub(model.forward(b.x), b.y))),
    checkpoint: { dir, every: 1 },
  });
  counting = false;
  const params = model.namedParameters().flatMap(([, p]) => Array.from(new Uint32Array(Float32Array.from(p.variable.read().dataSync()).buffer)));
  console.log(JSON.stringify({ from, operations, step: trainer.step, params, ...(trace ? { trace } : {}) }));
} else if (mode === 'write') {
  const id = Number(third);
  const rounds = Number(fourth);
  const model = new TinyMlp();
  const probe = new TinyMlp();
  const fill = (value) => {
    const dict = new Map(model.namedParameters().map(([name, p]) => [name, tf.fill(p.referenceShape, value)]));
    loadStateDict(model, dict);
    for (const t of dict.values()) t.dispose();
  };
  const report = { saves: 0, checked: 0, mixed: 0, refused: 0, errors: [] };
  for (let round = 1; round <= rounds; round++) {
    fill(id * 1000 + round);
    const trainerState = { version: 1, step: round, rngState: 0, schedule: { type: 'constant' }, optimizer: {}, gradientAccumulationSteps: 1, maxGradNorm: null, stage: null, config: { writer: id }, lastMetrics: null };
    await saveCheckpoint(dir, { model, trainerState });
    report.saves += 1;
    try {
      const { trainerState: read } = await resumeFromCheckpoint(dir, { model: probe });
      const values = new Set(probe.namedParameters().flatMap(([, p]) => Array.from(p.variable.read().dataSync())));
      const [value] = [...values];
      const consistent = values.size === 1 && value % 1000 === read.step && Math.floor(value / 1000) === read.config.writer;
      if (consistent) report.checked += 1;
      else report.mixed += 1;
    } catch (error) {
      report.refused += 1;
      report.errors.push(error.message);
    }
  }
  console.log(JSON.stringify(report));
}
