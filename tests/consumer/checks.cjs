'use strict';
/**
 * The checks the consumer test runs against the PACKED packages, installed with npm in a fresh
 * project outside the workspace. The caller imports the packages (ESM `import` from `esm.mjs`,
 * CommonJS `require` from `cjs.cjs`) and passes them in, so the same checks exercise both builds.
 *
 * Per package: a forward pass with the output shape checked, no tensor leak, a gradient from the
 * built output (every trainable tensor gets a finite gradient; for Parrot also a central-difference
 * directional derivative), and the export round trip to the reference PyTorch layout: the
 * full-checkpoint names (`model.moe_model.*`, `model.layers.{i}.attn_pool.*`, `llama_model.model.*`),
 * `[out, in]` Linear weights, written as safetensors (Parrot: a sharded HF checkpoint on disk),
 * re-loaded into a fresh module, identical outputs.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function fail(message) {
  throw new Error(message);
}

function expectShape(label, tensor, expected) {
  const actual = tensor.shape;
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    fail(`${label}: expected shape [${expected}], got [${actual}]`);
  }
}

function maxAbsDiff(tf, a, b) {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

function expectFiniteGradients(tf, label, grads, expectedCount) {
  const names = Object.keys(grads);
  if (names.length !== expectedCount) fail(`${label}: expected ${expectedCount} gradients, got ${names.length}`);
  let nonZero = 0;
  for (const name of names) {
    const values = grads[name].dataSync();
    for (const v of values) if (!Number.isFinite(v)) fail(`${label}: gradient of ${name} is not finite`);
    if (values.some((v) => v !== 0)) nonZero++;
  }
  if (nonZero === 0) fail(`${label}: every gradient is zero`);
  return nonZero;
}

/** Replace every tensor of `dict` by a random one of the same shape (scale `scale`). */
function randomized(tf, dict, seed, scale) {
  const out = new Map();
  let s = seed;
  for (const [name, value] of dict) {
    const seedValue = s++;
    out.set(name, tf.tidy(() => tf.mul(tf.randomNormal(value.shape, 0, 1, 'float32', seedValue), scale)));
  }
  return out;
}

function disposeMap(map) {
  for (const t of map.values()) t.dispose();
}

function checkParrot(libs, log) {
  const { tf, core, parrot } = libs;
  const { ParrotMoE, PARROT_CHECKPOINT_PREFIX } = parrot;
  const args = { hiddenSize: 8, intermediateSize: 12, numExperts: 3 };
  core.setSeed(7);
  const moe = new ParrotMoE(args);
  const visual = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 1);
  const text = tf.randomNormal([2, 4, 8], 0, 1, 'float32', 2);
  const textMask = tf.tensor2d([[1, 1, 1, 1], [1, 1, 0, 0]]);
  const weights = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 3);

  const before = tf.memory().numTensors;
  const out = moe.forward({ visual, text, textMask });
  expectShape('ParrotMoE output', out.output, [2, 5, 8]);
  expectShape('ParrotMoE routingWeights', out.routingWeights, [2, 3]);
  const rowSums = tf.tidy(() => tf.sum(out.routingWeights, 1).dataSync());
  rowSums.forEach((s, b) => Math.abs(s - 1) < 1e-5 || fail(`ParrotMoE: routing weights of sample ${b} sum to ${s}`));
  tf.dispose([out.output, out.routingWeights, out.textAttention]);
  if (tf.memory().numTensors !== before) fail(`ParrotMoE.forward leaked ${tf.memory().numTensors - before} tensors`);

  // Gradient from the built output: every parameter, plus a directional derivative w.r.t. the input.
  const loss = (v) => tf.tidy(() => tf.sum(tf.mul(moe.forward({ visual: v, text, textMask }).output, weights)));
  const { value, grads } = tf.variableGrads(() => loss(visual), moe.trainableVariables());
  expectFiniteGradients(tf, 'ParrotMoE parameter gradients', grads, 1 + 3 * args.numExperts);
  tf.dispose([value, ...Object.values(grads)]);
  const direction = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 4);
  const gradient = tf.grad(loss)(visual);
  const analytic = tf.tidy(() => tf.sum(tf.mul(gradient, direction)).dataSync()[0]);
  const h = 1e-2;
  const numeric = tf.tidy(() => {
    const plus = loss(tf.add(visual, tf.mul(direction, h))).dataSync()[0];
    const minus = loss(tf.sub(visual, tf.mul(direction, h))).dataSync()[0];
    return (plus - minus) / (2 * h);
  });
  const relative = Math.abs(analytic - numeric) / Math.max(1, Math.abs(numeric));
  if (!(relative < 2e-2)) fail(`ParrotMoE input gradient: analytic ${analytic} vs central difference ${numeric}`);
  tf.dispose([gradient, direction]);

  // Export to the reference layout (full Parrot checkpoint names), sharded safetensors, re-load.
  const exported = moe.stateDict(PARROT_CHECKPOINT_PREFIX);
  const expected = new Map([[`${PARROT_CHECKPOINT_PREFIX}gate.weight`, [3, 8]]]);
  for (let i = 0; i < 3; i++) {
    expected.set(`${PARROT_CHECKPOINT_PREFIX}experts.${i}.gate_proj.weight`, [12, 8]);
    expected.set(`${PARROT_CHECKPOINT_PREFIX}experts.${i}.up_proj.weight`, [12, 8]);
    expected.set(`${PARROT_CHECKPOINT_PREFIX}experts.${i}.down_proj.weight`, [8, 12]);
  }
  if (exported.size !== expected.size) fail(`ParrotMoE export: expected ${expected.size} tensors, got [${[...exported.keys()]}]`);
  for (const [name, shape] of expected) {
    const t = exported.get(name) ?? fail(`ParrotMoE export: missing ${name}, got [${[...exported.keys()]}]`);
    expectShape(`ParrotMoE export ${name}`, t, shape);
  }
  const reference = moe.forward({ visual, text, textMask });
  return (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mllm-parrot-export-'));
    try {
      // The recipe of docs/scaling-out.md: a host checkpoint without MoE tensors (sharded, with an
      // index), the MoE written as an extra shard and registered in the index.
      const llm = [['model.embed_tokens.weight', tf.ones([4, 8])], ['model.norm.weight', tf.ones([8])]];
      const base = await core.saveShardedCheckpoint(dir, llm, { maxShardBytes: 100 });
      tf.dispose(llm.map(([, t]) => t));
      if (base.shardFiles.length < 2) fail(`expected a sharded base checkpoint, got ${base.shardFiles}`);
      const shard = 'model-mllm-moe.safetensors';
      await core.writeSafetensorsFile(path.join(dir, shard), exported, { format: 'pt' });
      const indexPath = path.join(dir, 'model.safetensors.index.json');
      const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
      const dataBytes = [...exported.values()].reduce((n, t) => n + 4 * t.size, 0);
      for (const name of exported.keys()) index.weight_map[name] = shard;
      index.metadata = { ...index.metadata, total_size: (index.metadata?.total_size ?? 0) + dataBytes };
      fs.writeFileSync(indexPath, JSON.stringify(index, null, 2));
      core.setSeed(99);
      const fresh = new ParrotMoE(args);
      const differs = fresh.forward({ visual, text, textMask });
      if (maxAbsDiff(tf, differs.output, reference.output) === 0) fail('ParrotMoE: a fresh module already matches (test cannot fail)');
      tf.dispose([differs.output, differs.routingWeights, differs.textAttention]);
      const loaded = await core.loadShardedCheckpoint(dir, { filter: (n) => n.startsWith(PARROT_CHECKPOINT_PREFIX) });
      if (loaded.tensors.size !== expected.size || loaded.weightMap.size !== expected.size + 2) {
        fail(`ParrotMoE export: re-loaded ${loaded.tensors.size} MoE tensors of ${loaded.weightMap.size} in the index`);
      }
      fresh.loadStateDict(loaded.tensors, { prefix: PARROT_CHECKPOINT_PREFIX, strict: true });
      disposeMap(loaded.tensors);
      const again = fresh.forward({ visual, text, textMask });
      const diff = maxAbsDiff(tf, again.output, reference.output);
      if (diff !== 0) fail(`ParrotMoE export round trip: outputs differ by ${diff}`);
      tf.dispose([again.output, again.routingWeights, again.textAttention]);
      fresh.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      tf.dispose([reference.output, reference.routingWeights, reference.textAttention]);
      disposeMap(exported);
      moe.dispose();
      tf.dispose([visual, text, textMask, weights]);
    }
    log('parrot: forward [2,5,8], no leak, parameter + input gradients, export appended to a sharded HF checkpoint, round trip');
  })();
}

function tinyHost(libs, seed) {
  libs.core.setSeed(seed);
  return new libs.models.HostMLLM({
    config: {
      text: { vocabSize: 262, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 24, ropeTheta: 10000, maxLength: 64 },
      vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16 },
    },
  });
}

function hostBatch(tf, model) {
  const pad = model.tokenizer.padId;
  const ids = [
    [72, 105, model.tokenizer.imageId, 120, 121, 122],
    [65, 66, 67, 68, pad, pad],
  ];
  return {
    inputIds: tf.tensor2d(ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(ids.map((row) => row.map((id) => (id === pad ? 0 : 1))), undefined, 'int32'),
    labels: tf.tensor2d(ids.map((row) => row.map((id) => (id === pad || id === model.tokenizer.imageId ? -100 : id))), undefined, 'int32'),
    imageFeatures: tf.randomNormal([1, 4, 12], 0, 1, 'float32', 5),
  };
}

function hostLogits(tf, model, batch) {
  const out = model.forward(batch);
  tf.dispose([out.attentionMask, out.labels].filter(Boolean));
  return out.logits;
}

async function checkWings(libs, log) {
  const { tf, core, models, wings } = libs;
  const { injectWings } = wings;
  const config = { stage: 2, rank: 3, routerMaxLength: 32 };
  const host = tinyHost(libs, 1);
  const batch = hostBatch(tf, host);
  const base = hostLogits(tf, host, batch);
  expectShape('host logits', base, [2, 9, 262]);
  const injection = injectWings(host, config);
  const initial = hostLogits(tf, host, batch);
  if (maxAbsDiff(tf, initial, base) !== 0) fail('Wings: a fresh adapter must leave the host output unchanged');
  initial.dispose();

  // Give the learners and routers non-trivial weights (through the reference-named state dict).
  const names = injection.adapter.stateDict();
  const random = randomized(tf, names, 11, 0.3);
  disposeMap(names);
  injection.adapter.loadStateDict(random, { strict: true });
  disposeMap(random);
  const before = tf.memory().numTensors;
  const withWings = hostLogits(tf, host, batch);
  expectShape('Wings logits', withWings, [2, 9, 262]);
  if (maxAbsDiff(tf, withWings, base) === 0) fail('Wings: random learner weights did not change the output');
  withWings.dispose();
  if (tf.memory().numTensors !== before) fail(`Wings forward leaked ${tf.memory().numTensors - before} tensors`);

  // Gradient of the host's LM loss w.r.t. the adapter only (the base is frozen by injectWings).
  const trainable = injection.adapter.trainableVariables();
  const { value, grads } = tf.variableGrads(() => host.loss(batch), trainable);
  expectFiniteGradients(tf, 'Wings adapter gradients', grads, trainable.length);
  if (!Number.isFinite(value.dataSync()[0])) fail('Wings: loss is not finite');
  tf.dispose([value, ...Object.values(grads)]);

  // Export: the adapter's names are the full-checkpoint names of the reference decoder layers.
  const exported = injection.adapter.stateDict();
  for (const name of exported.keys()) {
    if (!/^model\.layers\.\d+\.(attn_pool|attn_t_pool|reweight_module)\./.test(name)) fail(`Wings export: unexpected key ${name}`);
  }
  if (!exported.has('model.layers.1.attn_pool.q_proj.weight') && ![...exported.keys()].some((k) => k.startsWith('model.layers.1.attn_pool.'))) {
    fail(`Wings export: no model.layers.1.attn_pool.* key in [${[...exported.keys()]}]`);
  }
  // docs/scaling-out.md's Wings recipe: the host's own state dict filtered to adapter + projector.
  const documented = /^model\.mm_projector\.|^model\.layers\.\d+\.(attn_pool|attn_t_pool|reweight_module)\./;
  const hostTensors = core.stateDict(host);
  const filtered = [...hostTensors.keys()].filter((name) => documented.test(name));
  disposeMap(hostTensors);
  const projectorKeys = filtered.filter((name) => name.startsWith('model.mm_projector.'));
  if (filtered.length !== exported.size + 4 || projectorKeys.length !== 4 || ![...exported.keys()].every((k) => filtered.includes(k))) {
    fail(`Wings export recipe: host keys [${filtered}] do not match the adapter's [${[...exported.keys()]}] + 4 projector keys`);
  }
  const bytes = core.saveSafetensors(exported, { format: 'pt' });
  disposeMap(exported);
  const reference = hostLogits(tf, host, batch);

  const freshHost = tinyHost(libs, 1);
  const freshBase = hostLogits(tf, freshHost, batch);
  if (maxAbsDiff(tf, freshBase, base) !== 0) fail('Wings: the seeded host is not reproducible');
  freshBase.dispose();
  const freshInjection = injectWings(freshHost, config);
  const { tensors } = core.loadSafetensors(bytes);
  freshInjection.adapter.loadStateDict(tensors, { strict: true });
  disposeMap(tensors);
  const again = hostLogits(tf, freshHost, batch);
  const diff = maxAbsDiff(tf, again, reference);
  if (diff !== 0) fail(`Wings export round trip: logits differ by ${diff}`);
  tf.dispose([again, reference, base]);
  for (const [inj, model] of [[injection, host], [freshInjection, freshHost]]) {
    inj.remove();
    inj.adapter.dispose();
    model.dispose();
  }
  models.disposeBatch(batch);
  log('wings: host forward [2,9,262] with stage-2 learners, no leak, adapter gradients, reference export round trip');
}

async function checkVpgc(libs, log) {
  const { tf, core, vpgc: lib } = libs;
  const { QFormerVPG, VPGC, loadVPGStateDict, loadVPGCStateDict, vpgcStateDict, VPGC_REFERENCE_PREFIX } = lib;
  const vpgArgs = {
    qformer: { hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 24, encoderWidth: 12, crossAttentionFreq: 2 },
    numQueryTokens: 4,
    llmHiddenSize: 20,
  };
  core.setSeed(3);
  const vpg = new QFormerVPG(vpgArgs);
  const vpgc = new VPGC({ vpg, updateLayer: 1 });
  const inputs = {
    hidden: tf.randomNormal([2, 10, 20], 0, 1, 'float32', 6),
    lastPromptIndex: [9, 7],
    imageFeatures: tf.randomNormal([3, 6, 12], 0, 1, 'float32', 7),
    imageToSample: [0, 0, 1],
    imageSpans: [
      [{ imageIndex: 0, start: 1, length: 4 }, { imageIndex: 1, start: 5, length: 4 }],
      [{ imageIndex: 2, start: 0, length: 4 }],
    ],
  };
  const tokens = vpg.forward(inputs.imageFeatures);
  expectShape('QFormerVPG image tokens', tokens, [3, 4, 20]);
  tokens.dispose();
  const initial = vpgc.addResidual(inputs);
  expectShape('VPGC output', initial, [2, 10, 20]);
  if (maxAbsDiff(tf, initial, inputs.hidden) !== 0) fail('VPGC: a fresh (zero-initialised) VPG-C must leave the hidden states unchanged');
  initial.dispose();

  const names = vpgcStateDict(vpgc);
  const random = randomized(tf, names, 21, 0.2);
  disposeMap(names);
  loadVPGCStateDict(vpgc, random);
  disposeMap(random);
  const before = tf.memory().numTensors;
  const output = vpgc.addResidual(inputs);
  if (tf.memory().numTensors !== before + 1) fail(`VPGC.addResidual leaked ${tf.memory().numTensors - before - 1} tensors`);
  const [changed, untouched] = tf.tidy(() => {
    const delta = tf.abs(tf.sub(output, inputs.hidden)); // [2, 10, 20]
    const perPosition = tf.max(delta, 2).arraySync(); // [2, 10]
    return [perPosition[0][1] > 0 && perPosition[1][3] > 0, perPosition[0][0] === 0 && perPosition[0][9] === 0 && perPosition[1][4] === 0];
  });
  if (!changed || !untouched) fail('VPGC: the residual must change exactly the image-token positions');
  output.dispose();

  const weights = tf.randomNormal([2, 10, 20], 0, 1, 'float32', 8);
  const trainable = vpgc.trainableVariables();
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(vpgc.addResidual(inputs), weights)), trainable);
  expectFiniteGradients(tf, 'VPGC gradients', grads, 5);
  tf.dispose([value, weights, ...Object.values(grads)]);

  // Full Cheetah-layout checkpoint: VPG at the top level, VPG-C under llama_model.model.
  const full = new Map([...core.stateDict(vpg), ...vpgcStateDict(vpgc)]);
  for (const name of ['Qformer.bert.encoder.layer.0.crossattention.self.query.weight', 'query_tokens', 'llama_proj.weight',
    `${VPGC_REFERENCE_PREFIX}query_tokens`, `${VPGC_REFERENCE_PREFIX}qformer_proj.weight`, `${VPGC_REFERENCE_PREFIX}llm_proj.weight`]) {
    if (!full.has(name)) fail(`VPGC export: missing ${name}`);
  }
  expectShape('llama_model.model.qformer_proj.weight', full.get(`${VPGC_REFERENCE_PREFIX}qformer_proj.weight`), [16, 20]);
  expectShape('llama_model.model.llm_proj.weight', full.get(`${VPGC_REFERENCE_PREFIX}llm_proj.weight`), [20, 16]);
  const bytes = core.saveSafetensors(full, { format: 'pt' });
  disposeMap(full);
  const reference = vpgc.addResidual(inputs);
  core.setSeed(1234);
  const freshVpg = new QFormerVPG(vpgArgs);
  const freshVpgc = new VPGC({ vpg: freshVpg, updateLayer: 1 });
  const { tensors } = core.loadSafetensors(bytes);
  loadVPGStateDict(freshVpg, tensors);
  loadVPGCStateDict(freshVpgc, tensors);
  disposeMap(tensors);
  const again = freshVpgc.addResidual(inputs);
  const diff = maxAbsDiff(tf, again, reference);
  if (diff !== 0) fail(`VPGC export round trip: outputs differ by ${diff}`);
  tf.dispose([again, reference, inputs.hidden, inputs.imageFeatures]);
  for (const m of [vpgc, vpg, freshVpgc, freshVpg]) m.dispose();
  log('vpgc: VPG tokens [3,4,20], VPG-C residual [2,10,20] on image spans only, no leak, gradients, Cheetah-layout export round trip');
}

function checkEval(libs, log) {
  const { extractAnswer } = libs.evaluation;
  const options = [{ letter: 'A', text: 'a cat' }, { letter: 'B', text: 'a dog' }];
  const found = extractAnswer('The answer is B.', options);
  if (!found || found.letter !== 'B') fail(`@mllm/eval extractAnswer: expected B, got ${JSON.stringify(found)}`);
  log('eval: extractAnswer');
}

/** Run every check; `libs` = { tf, core, parrot, wings, vpgc, evaluation }. */
/** `@mllm/parrot/threads`: the packed worker script starts from this build and gives the one-thread results bitwise. */
async function checkParrotThreads(libs, log) {
  const { tf, core, parrot, parrotThreads } = libs;
  core.setSeed(11);
  const moe = new parrot.ParrotMoE({ hiddenSize: 8, intermediateSize: 12, numExperts: 4 });
  const visual = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 5);
  const text = tf.randomNormal([2, 4, 8], 0, 1, 'float32', 6);
  const probe = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 7);
  const values = () => {
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(moe.forward({ visual, text }).output, probe)), moe.trainableVariables());
    const out = [value, ...Object.values(grads)].map((t) => Array.from(t.dataSync()));
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
  const single = values();
  const threads = await parrotThreads.ExpertThreads.start(moe, { workers: 2 });
  const before = tf.memory().numTensors;
  const threaded = values();
  if (tf.memory().numTensors !== before) fail(`ExpertThreads leaked ${tf.memory().numTensors - before} tensors`);
  await threads.close();
  single.forEach((a, i) => {
    const j = a.findIndex((x, k) => !Object.is(x, threaded[i][k]));
    if (j >= 0) fail(`ExpertThreads: result ${i} differs at ${j}: ${threaded[i][j]} vs one thread ${a[j]}`);
  });
  tf.dispose([visual, text, probe]);
  moe.dispose();
  log(`ParrotMoE on 2 expert worker threads: loss and ${single.length - 1} gradients bitwise equal to one thread`);
}

/** wasm from the installed packages: XNNPACK on every core (threaded build started by initBackend), same numbers as cpu. */
async function checkWasmThreads(libs, log) {
  const { tf, core } = libs;
  const a = tf.randomNormal([64, 96], 0, 1, 'float32', 11);
  const b = tf.randomNormal([96, 80], 0, 1, 'float32', 12);
  const onCpu = tf.tidy(() => core.matMul2d(a, b).arraySync());
  const values = [a.arraySync(), b.arraySync()];
  tf.dispose([a, b]);
  const choice = await core.initBackend('wasm');
  const threads = await core.wasmBackendThreads();
  const expected = Math.max(1, Math.min(typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length, 8));
  if (threads !== expected) fail(`wasm: expected ${expected} XNNPACK threads (auto), got ${threads}: ${choice.reason}`);
  const [wa, wb] = values.map((v) => tf.tensor2d(v));
  const onWasm = tf.tidy(() => core.matMul2d(wa, wb).arraySync());
  tf.dispose([wa, wb]);
  let worst = 0;
  onCpu.forEach((row, i) => row.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - onWasm[i][j])))));
  if (!(worst < 1e-4)) fail(`wasm (${threads} threads) vs cpu matMul: max |difference| ${worst}`);
  await core.initBackend('cpu');
  log(`wasm from the installed packages: ${threads} XNNPACK thread(s), matMul within ${worst.toExponential(1)} of cpu`);
}

/** @mllm/train on the @mllm/models host: AdamW through the Trainer lowers the host's loss, nothing leaks. */
async function checkTrain(libs, log) {
  const { tf, train } = libs;
  const model = tinyHost(libs, 11);
  const batch = hostBatch(tf, model);
  const before = tf.memory().numTensors;
  const optimizer = new train.AdamW(model, { lr: 0.01, weightDecay: 0 });
  const trainer = new train.Trainer({ model, optimizer, progress: false });
  const metrics = await trainer.fit({ steps: 4, batches: () => batch, lossFn: (b) => model.loss(b) });
  if (!(metrics[3].loss < metrics[0].loss)) fail(`train: the loss did not go down over 4 AdamW steps: ${metrics.map((m) => m.loss)}`);
  optimizer.dispose();
  if (tf.memory().numTensors !== before) fail(`train: tensors leaked: ${before} → ${tf.memory().numTensors}`);
  tf.dispose(Object.values(batch));
  model.dispose();
  log(`@mllm/train: host loss ${metrics[0].loss.toFixed(3)} → ${metrics[3].loss.toFixed(3)} in 4 AdamW steps`);
}

async function runChecks(libs, label) {
  const log = (message) => console.log(`[${label}] ${message}`);
  const choice = await libs.core.initBackend('cpu');
  log(`backend ${choice.backend}, gradients ${choice.gradients}`);
  const start = libs.tf.memory().numTensors;
  await checkParrot(libs, log);
  if (libs.parrotThreads) await checkParrotThreads(libs, log);
  await checkWings(libs, log);
  await checkVpgc(libs, log);
  await checkTrain(libs, log);
  if (libs.evaluation) checkEval(libs, log);
  await checkWasmThreads(libs, log);
  const end = libs.tf.memory().numTensors;
  if (end !== start) fail(`tensors leaked over the whole run: ${start} → ${end}`);
  log('all checks passed');
}

module.exports = { runChecks };
