/**
 * The demo's model, shared by the browser page and the Node tests (browser-safe: no Node imports).
 *
 * A demo checkpoint is a directory with
 * - `mllm-demo.json` (`DemoManifest`): which host config and weight files, the Parrot MoE arguments
 *   and the Wings configuration (either may be absent);
 * - the host config (`config.json`, written by core's `saveHostModel`);
 * - one or more safetensors files whose union is the state dict of the host model with its hook
 *   modules attached under their reference names: `model.moe_model.*` (Parrot) and
 *   `model.layers.{i}.attn_pool|attn_t_pool|reweight_module.*` (Wings). Loaded strictly.
 *
 * `runDemo` answers a question about an image (greedy decoding, `greedyGenerate`) and then runs one analysis
 * forward over prompt + answer that records ParrotMoE's CLS→text attention and routing weights
 * and, per Wings layer, the router's visual/textual blend for every token of the spliced sequence.
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadSafetensors, loadStateDict, type DecoderHooks } from '@mllm/core';
import { HostMLLM, IGNORE_INDEX, encodeChat, shiftedTokenLogProbs, type HostMLLMConfig, type MultimodalBatch } from '@mllm/models';
import { PARROT_CHECKPOINT_PREFIX, ParrotMoE, attachParrot, type ParrotMoEArgs } from '@mllm/parrot';
import { attachWings, type AttachedWings, type WingsConfig } from '@mllm/wings';

export const DEMO_MANIFEST_FILE = 'mllm-demo.json';
export const DEMO_FORMAT = 'mllm-browser-demo-v1';

/** `mllm-demo.json`. */
export interface DemoManifest {
  format: typeof DEMO_FORMAT;
  /** Host config file (core `saveHostModel` format), relative to the checkpoint directory. */
  hostConfig: string;
  /** Safetensors files, relative; their tensors are merged (a name may appear once). */
  weights: string[];
  /** Parrot MoE on the projected visual tokens, or null. */
  parrot: { args: ParrotMoEArgs; moduleName: string } | null;
  /** Wings learners (attached with `attachWings`), or null. */
  wings: WingsConfig | null;
  /** System prompt of the chat template (null = none; absent = the template's default). */
  systemPrompt?: string | null;
  /** Default answer length. */
  maxNewTokens?: number;
  /** Free text shown on the page. */
  description?: string;
}

/** The files of a checkpoint, already read (fetch in the browser, fs in Node). */
export interface DemoCheckpointFiles {
  manifest: DemoManifest;
  hostConfig: HostMLLMConfig;
  /** Bytes of each file in `manifest.weights`, same order. */
  weights: Uint8Array[];
}

/** One token of a sequence as shown on the page. */
export interface TokenPiece {
  /** Printable text: a whole UTF-8 character, a short mark for a special token (▸ `<|im_start|>`, ◂ `<|im_end|>`, ▣ `<image>`), ▣ for an image token too. */
  label: string;
  /** Token indices `[start, end)` it covers. */
  start: number;
  end: number;
  kind: 'text' | 'special' | 'image';
}

export interface DemoInput {
  /** `[S, S, 3]` row-major pixels in [0, 1], S = the model's image size. */
  pixels: Float32Array | number[];
  /** The user's question (any language). The image placeholder is prepended. */
  question: string;
  maxNewTokens?: number;
}

export interface DemoResult {
  question: string;
  /** Chat-templated prompt ids (with the `<image>` placeholder). */
  promptIds: number[];
  /** Greedy answer ids (stop token excluded). */
  answerIds: number[];
  answer: string;
  /** Text ids of the analysis forward: prompt + answer. */
  textIds: number[];
  /** `[T]` ParrotMoE CLS→text attention over `textIds` (0 outside the prompt), or null without Parrot. */
  textAttention: number[] | null;
  /** `[E]` ParrotMoE routing weights, or null without Parrot. */
  routingWeights: number[] | null;
  /** Wings router blend, or null without stage-2 Wings. */
  wings: {
    layers: number[];
    /** `[layers][L]` visual weight w_v per position of the spliced sequence (textual = 1 − w_v). */
    visualWeight: number[][];
  } | null;
  /** Spliced sequence: the image's span. */
  imageSpan: { start: number; length: number };
  /** Spliced-sequence token ids, image tokens as −1 − k (k = index inside the image). */
  splicedIds: number[];
  /** Mean next-token log-probability of the answer under the analysis forward (a scalar check). */
  answerLogProb: number;
  timings: { generateMs: number; analyzeMs: number };
}

/** A loaded demo model and what is attached to it. */
export interface DemoModel {
  model: HostMLLM;
  manifest: DemoManifest;
  moe: ParrotMoE | null;
  wings: AttachedWings | null;
  /** Parameter count (host + hooks). */
  parameterCount: number;
  dispose(): void;
}

function assertManifest(manifest: DemoManifest): void {
  if (!manifest || manifest.format !== DEMO_FORMAT) {
    throw new Error(`${DEMO_MANIFEST_FILE}: format must be '${DEMO_FORMAT}', got ${JSON.stringify(manifest?.format)}`);
  }
  if (typeof manifest.hostConfig !== 'string' || !Array.isArray(manifest.weights) || manifest.weights.length === 0) {
    throw new Error(`${DEMO_MANIFEST_FILE}: hostConfig must be a file name and weights a non-empty list, got ${JSON.stringify({ hostConfig: manifest.hostConfig, weights: manifest.weights })}`);
  }
}

/** Attach `moe` with Parrot's verb, recording its outputs while `sink.recording`. */
function attachRecordingParrot(model: HostMLLM, moe: ParrotMoE, moduleName: string, sink: ParrotSink): void {
  if (moduleName !== PARROT_CHECKPOINT_PREFIX.slice(0, -1)) {
    throw new Error(`${DEMO_MANIFEST_FILE}: parrot.moduleName must be '${PARROT_CHECKPOINT_PREFIX.slice(0, -1)}' (where attachParrot registers the MoE), got ${JSON.stringify(moduleName)}`);
  }
  attachParrot(model, {
    moe,
    freezeBase: false,
    onForward: (outputs) => {
      if (!sink.recording) return;
      disposeAll([sink.textAttention, sink.routingWeights]);
      sink.textAttention = tf.keep(outputs.textAttention.clone());
      sink.routingWeights = tf.keep(outputs.routingWeights.clone());
    },
  });
}

interface ParrotSink {
  recording: boolean;
  textAttention: tf.Tensor | null;
  routingWeights: tf.Tensor | null;
}

interface WingsSink {
  recording: boolean;
  /** layer → `[B, L, 1]` visual weight */
  visual: Map<number, tf.Tensor>;
}

/**
 * Records the Wings router's weights: an `afterAttention` hook attached after Wings' own that
 * applies each layer's router (`reweight_module`) to the same attention probabilities Wings' hook
 * received and changes nothing (returns null). @mllm/wings does not expose the weights it computes.
 */
function wingsCaptureHooks(injection: AttachedWings, sink: WingsSink): DecoderHooks {
  const layers = injection.config.layers;
  return {
    attentionProbsLayers: [...layers],
    afterAttention: (layerIndex, args) => {
      if (!sink.recording || !args.attentionProbs) return null;
      const router = injection.module.layer(layerIndex)?.router;
      if (!router) return null;
      const weights = router.forward(args.attentionProbs); // [B, L, 1] each
      sink.visual.get(layerIndex)?.dispose();
      sink.visual.set(layerIndex, tf.keep(weights.visual));
      weights.textual.dispose();
      return null;
    },
  };
}

/** Files of a checkpoint without `mllm-demo.json`: host `config.json` + `model.safetensors`, optionally a ParrotMoE. */
export const PARROT_EXAMPLE_FILES = { moeConfig: 'moe-config.json', moeWeights: 'moe.safetensors' } as const;

/**
 * The manifest of a checkpoint written without one (the layout of the Parrot example:
 * `config.json` + `model.safetensors` from `saveHostModel`, and when it has a ParrotMoE
 * `moe.safetensors` with `model.moe_model.*` tensors and `moe-config.json` = `ParrotMoE.getConfig()`).
 */
export function inferManifest(moeConfig: Record<string, unknown> | null): DemoManifest {
  let parrot: DemoManifest['parrot'] = null;
  if (moeConfig) {
    const pick = <K extends keyof ParrotMoEArgs>(key: K) => (moeConfig[key] === undefined ? {} : { [key]: moeConfig[key] as ParrotMoEArgs[K] });
    parrot = {
      moduleName: 'model.moe_model',
      args: {
        hiddenSize: moeConfig.hiddenSize as number,
        intermediateSize: moeConfig.intermediateSize as number,
        numExperts: moeConfig.numExperts as number,
        ...pick('moeWeight'),
        ...pick('useMoe'),
        ...pick('useResidual'),
        ...pick('topK'),
        ...pick('auxLossCoefficient'),
        ...pick('expertStrategy'),
      },
    };
  }
  return {
    format: DEMO_FORMAT,
    hostConfig: 'config.json',
    weights: ['model.safetensors', ...(moeConfig ? [PARROT_EXAMPLE_FILES.moeWeights] : [])],
    parrot,
    wings: null,
    systemPrompt: null,
    description: `no ${DEMO_MANIFEST_FILE}: host model${moeConfig ? ' + ParrotMoE (moe-config.json)' : ''}, inferred`,
  };
}

/** A demo model with its recording sinks (what `runDemo` needs). */
export type AssembledDemoModel = DemoModel & { sinks: { parrot: ParrotSink; wings: WingsSink } };

/**
 * Build the host model and attach Parrot and Wings as the manifest says, freshly initialized (from
 * core's seeded RNG: call `setSeed` first for a reproducible model).
 */
export function assembleDemoModel(manifest: DemoManifest, hostConfig: HostMLLMConfig): AssembledDemoModel {
  assertManifest(manifest);
  const model = new HostMLLM({ config: hostConfig });
  const parrotSink: ParrotSink = { recording: false, textAttention: null, routingWeights: null };
  const wingsSink: WingsSink = { recording: false, visual: new Map() };
  let moe: ParrotMoE | null = null;
  let wings: AttachedWings | null = null;
  try {
    if (manifest.parrot) {
      moe = new ParrotMoE(manifest.parrot.args);
      attachRecordingParrot(model, moe, manifest.parrot.moduleName, parrotSink);
    }
    if (manifest.wings) {
      wings = attachWings(model, manifest.wings);
      if (wings.config.stage === 2) model.addHooks(wingsCaptureHooks(wings, wingsSink));
    }
  } catch (error) {
    model.dispose();
    wings?.module.dispose();
    moe?.dispose();
    throw error;
  }
  return {
    model,
    manifest,
    moe,
    wings,
    get parameterCount() {
      return model.parameterCount();
    },
    sinks: { parrot: parrotSink, wings: wingsSink },
    dispose: () => {
      disposeAll([parrotSink.textAttention, parrotSink.routingWeights, ...wingsSink.visual.values()]);
      model.dispose(); // the hook modules are the model's children while attached
    },
  };
}

/** `assembleDemoModel`, then load the checkpoint's weights strictly (every parameter, no extra tensor). */
export function buildDemoModel(files: DemoCheckpointFiles): AssembledDemoModel {
  const { manifest, hostConfig } = files;
  assertManifest(manifest);
  if (files.weights.length !== manifest.weights.length) {
    throw new Error(`buildDemoModel: expected ${manifest.weights.length} weight files (${manifest.weights.join(', ')}), got ${files.weights.length}`);
  }
  const demo = assembleDemoModel(manifest, hostConfig);
  const tensors = new Map<string, tf.Tensor>();
  try {
    files.weights.forEach((bytes, i) => {
      const loaded = loadSafetensors(bytes);
      const repeated = [...loaded.tensors.keys()].filter((name) => tensors.has(name));
      if (repeated.length > 0) {
        for (const t of loaded.tensors.values()) t.dispose();
        throw new Error(`buildDemoModel: tensors ${repeated.map((n) => `'${n}'`).join(', ')} appear in more than one weight file (again in ${manifest.weights[i]})`);
      }
      for (const [name, tensor] of loaded.tensors) tensors.set(name, tensor);
    });
    loadStateDict(demo.model, tensors);
  } catch (error) {
    demo.dispose();
    throw error;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return demo;
}

/** The chat-templated prompt for a question about one image. */
export function promptIdsFor(demo: DemoModel, question: string): number[] {
  if (typeof question !== 'string' || question.trim().length === 0) {
    throw new Error(`runDemo: question must be a non-empty string, got ${JSON.stringify(question)}`);
  }
  const systemPrompt = demo.manifest.systemPrompt;
  return encodeChat(demo.model.tokenizer, [{ role: 'user', content: `<image>\n${question}` }], {
    addGenerationPrompt: true,
    ...(systemPrompt === undefined ? {} : { systemPrompt }),
  }).inputIds;
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/** Answer a question about an image and record Parrot's and Wings' routing (see the file comment). */
export async function runDemo(demo: AssembledDemoModel, input: DemoInput): Promise<DemoResult> {
  const { model } = demo;
  const S = model.visionTower.visionConfig.imageSize;
  const C = model.visionTower.visionConfig.numChannels;
  if (!input.pixels || input.pixels.length !== S * S * C) {
    throw new Error(`runDemo: pixels must hold S·S·C = ${S}·${S}·${C} = ${S * S * C} values, got ${input.pixels?.length}`);
  }
  const maxNewTokens = input.maxNewTokens ?? demo.manifest.maxNewTokens ?? 16;
  const promptIds = promptIdsFor(demo, input.question);
  const { parrot: parrotSink, wings: wingsSink } = demo.sinks;
  // one padded text length for every forward of this call: tfjs compiles GPU kernels per shape
  const padTo = promptIds.length + maxNewTokens;
  const features = tf.tidy(() => model.encodeImages(tf.tensor4d(Float32Array.from(input.pixels), [1, S, S, C]))); // [1, Nv, Dv]
  try {
    const t0 = now();
    const answerIds = await greedyGenerate(model, promptIds, features, maxNewTokens, padTo);
    const t1 = now();

    const textIds = [...promptIds, ...answerIds];
    const labels = [...promptIds.map(() => IGNORE_INDEX), ...answerIds];
    const batch = paddedBatch(model, textIds, labels, padTo, features);
    parrotSink.recording = true;
    wingsSink.recording = true;
    let answerLogProbTensor: tf.Scalar;
    let imageSpan: { start: number; length: number };
    let splicedLength: number;
    try {
      const out = model.forward(batch);
      const span = out.imageSpans[0]![0]!;
      imageSpan = { start: span.start, length: span.length };
      splicedLength = out.lengths[0]!;
      // labels of the spliced, padded sequence: the placeholder's slot becomes the image's tokens (ignored)
      const placeholder = textIds.indexOf(model.tokenizer.imageId);
      const splicedLabels = new Int32Array(out.logits.shape[1]).fill(IGNORE_INDEX);
      splicedLabels.set([...labels.slice(0, placeholder), ...new Array<number>(span.length).fill(IGNORE_INDEX), ...labels.slice(placeholder + 1)]);
      answerLogProbTensor = tf.tidy(() => tf.div(tf.sum(shiftedTokenLogProbs(out.logits, splicedLabels)), Math.max(answerIds.length, 1)) as tf.Scalar);
      disposeAll([out.logits, out.labels, out.attentionMask]);
    } finally {
      parrotSink.recording = false;
      wingsSink.recording = false;
      disposeAll([batch.inputIds, batch.attentionMask, batch.labels]);
    }
    const answerLogProb = (await answerLogProbTensor.data())[0]!;
    answerLogProbTensor.dispose();
    const textAttention = parrotSink.textAttention ? Array.from(await parrotSink.textAttention.data()).slice(0, textIds.length) : null;
    const routingWeights = parrotSink.routingWeights ? Array.from(await parrotSink.routingWeights.data()) : null;
    disposeAll([parrotSink.textAttention, parrotSink.routingWeights]);
    parrotSink.textAttention = null;
    parrotSink.routingWeights = null;
    let wings: DemoResult['wings'] = null;
    if (wingsSink.visual.size > 0) {
      const layers = [...wingsSink.visual.keys()].sort((a, b) => a - b);
      const visualWeight: number[][] = [];
      for (const layer of layers) visualWeight.push(Array.from(await wingsSink.visual.get(layer)!.data()).slice(0, splicedLength));
      for (const t of wingsSink.visual.values()) t.dispose();
      wingsSink.visual.clear();
      wings = { layers, visualWeight };
    }
    const t2 = now();
    const placeholder = textIds.indexOf(model.tokenizer.imageId);
    const splicedIds = [
      ...textIds.slice(0, placeholder),
      ...Array.from({ length: imageSpan.length }, (_, k) => -1 - k),
      ...textIds.slice(placeholder + 1),
    ];
    return {
      question: input.question,
      promptIds,
      answerIds,
      answer: model.tokenizer.decode(answerIds, { skipSpecialTokens: true }),
      textIds,
      textAttention,
      routingWeights,
      wings,
      imageSpan,
      splicedIds,
      answerLogProb,
      timings: { generateMs: t1 - t0, analyzeMs: t2 - t1 },
    };
  } finally {
    features.dispose();
  }
}

/**
 * Greedy decoding with asynchronous reads: the same tokens as `HostMLLM.generate` without the KV
 * cache (what it does when a hook `requiresFullSequence`, as stage-2 Wings does): each step runs
 * the full sequence, generated tokens labelled so that hooks see only the prompt as prompt; stops
 * at `<|im_end|>`/`<eos>` (not included), after `maxNewTokens`, or at the model's maxLength.
 *
 * `generate` reads each step's argmax synchronously (`dataSync`), which on Chromium's WebGPU
 * goes through tfjs' OffscreenCanvas read-back and left the GPU device unusable (`mapAsync … A valid
 * external Instance reference no longer exists`) in headless Chromium 156 with SwiftShader.
 */
export async function greedyGenerate(
  model: HostMLLM,
  promptIds: number[],
  imageFeatures: tf.Tensor3D | null,
  maxNewTokens: number,
  padTo = promptIds.length + maxNewTokens,
): Promise<number[]> {
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`greedyGenerate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  const stop = new Set([model.tokenizer.imEndId, model.tokenizer.eosId]);
  const maxLength = model.textConfig.maxLength;
  const generated: number[] = [];
  while (generated.length < maxNewTokens) {
    const batch = paddedBatch(model, [...promptIds, ...generated], [...promptIds.map(() => IGNORE_INDEX), ...generated], padTo, imageFeatures);
    let next: tf.Tensor;
    let splicedPromptLength: number;
    try {
      const out = model.forward(batch);
      const length = out.lengths[0]!;
      splicedPromptLength = length - generated.length;
      const V = out.logits.shape[2];
      next = tf.tidy(() => tf.argMax(tf.reshape(tf.slice(out.logits, [0, length - 1, 0], [1, 1, V]), [V]))); // []
      disposeAll([out.logits, out.labels, out.attentionMask]);
    } finally {
      disposeAll([batch.inputIds, batch.attentionMask, batch.labels]);
    }
    const id = (await next.data())[0]!;
    next.dispose();
    if (stop.has(id)) break;
    generated.push(id);
    if (splicedPromptLength + generated.length >= maxLength) break;
  }
  return generated;
}

/**
 * One right-padded sample `[1, padTo]` (ids, attention mask, labels) with precomputed image
 * features. Right padding leaves every real position's result unchanged (causal attention never
 * sees later positions; hooks mask padding) while keeping tensor shapes fixed across calls.
 */
export function paddedBatch(model: HostMLLM, ids: number[], labels: number[], padTo: number, imageFeatures: tf.Tensor3D | null): MultimodalBatch {
  const length = Math.max(padTo, ids.length);
  const pad = length - ids.length;
  return {
    inputIds: tf.tensor2d([[...ids, ...new Array<number>(pad).fill(model.tokenizer.padId)]], [1, length], 'int32'), // [1, T]
    attentionMask: tf.tensor2d([[...ids.map(() => 1), ...new Array<number>(pad).fill(0)]], [1, length], 'int32'), // [1, T]
    labels: tf.tensor2d([[...labels, ...new Array<number>(pad).fill(IGNORE_INDEX)]], [1, length], 'int32'), // [1, T]
    imageFeatures,
  };
}

/** Dispose the non-null tensors of a list. */
function disposeAll(tensors: Array<tf.Tensor | null | undefined>): void {
  for (const t of tensors) t?.dispose();
}

/** Short labels of special tokens on chart axes. */
const SPECIAL_LABELS: Record<string, string> = { '<|im_start|>': '▸', '<|im_end|>': '◂', '<image>': '▣', '<pad>': '·', '<bos>': '⊢', '<eos>': '⊣' };

const printable = (text: string): string => text.replace(/\n/g, '⏎').replace(/ /g, '␣').replace(/\t/g, '⇥');

/** What `tokenPieces` needs from a tokenizer. */
export interface PieceDecoder {
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string;
}

/**
 * Groups token ids into pieces for display: each character is one piece (with a byte tokenizer
 * the bytes of a multi-byte UTF-8 character are grouped, so a Chinese or Arabic character is one
 * bar, not three; bytes that never form a character stay single, shown as �), special tokens are
 * one piece each (short marks), image tokens (negative ids from `splicedIds`) one piece each.
 * Works with any tokenizer (byte or char).
 */
export function tokenPieces(ids: number[], tokenizer: PieceDecoder): TokenPiece[] {
  const decode = (slice: number[]) => tokenizer.decode(slice);
  const isSpecial = (id: number) => tokenizer.decode([id], { skipSpecialTokens: true }) === '' && tokenizer.decode([id]) !== '';
  const pieces: TokenPiece[] = [];
  let i = 0;
  while (i < ids.length) {
    const id = ids[i]!;
    if (id < 0) {
      pieces.push({ label: '▣', start: i, end: i + 1, kind: 'image' });
      i += 1;
      continue;
    }
    if (isSpecial(id)) {
      const name = decode([id]);
      pieces.push({ label: SPECIAL_LABELS[name] ?? name, start: i, end: i + 1, kind: 'special' });
      i += 1;
      continue;
    }
    let end = i + 1;
    let text = decode(ids.slice(i, end));
    while (text.includes('\uFFFD') && end < ids.length && end - i < 4 && ids[end]! >= 0 && !isSpecial(ids[end]!)) {
      end += 1;
      text = decode(ids.slice(i, end));
    }
    if (text.includes('\uFFFD') && end > i + 1) {
      end = i + 1; // never became a valid character: keep the single token
      text = decode(ids.slice(i, end));
    }
    pieces.push({ label: printable(text), start: i, end, kind: 'text' });
    i = end;
  }
  return pieces;
}

/** Sum (`sum`) or mean (`mean`) of `values` over each piece's token range. */
export function aggregatePieces(values: number[], pieces: TokenPiece[], how: 'sum' | 'mean'): number[] {
  return pieces.map((p) => {
    let total = 0;
    for (let t = p.start; t < p.end; t++) total += values[t] ?? 0;
    return how === 'sum' ? total : total / (p.end - p.start);
  });
}
