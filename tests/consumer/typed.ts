// TypeScript consumer: type-checked by `tsc` against the packed declaration files (strict,
// skipLibCheck off), then the emitted JavaScript runs. The @ts-expect-error lines prove the
// declarations are real types, not `any` (an unused @ts-expect-error is itself an error).
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, setSeed, stateDict, saveSafetensors, loadSafetensors, type BackendChoice, type StateDict } from '@mllm/core';
import { checkGradients } from '@mllm/core/testing';
import { ParrotMoE, PARROT_CHECKPOINT_PREFIX, type ParrotMoEArgs, type ParrotMoEOutputs } from '@mllm/parrot';
import { ExpertThreads, type ExpertThreadsOptions } from '@mllm/parrot/threads';
import { WingsLayer, type WingsConfig } from '@mllm/wings';
import { QFormerVPG, VPGC, vpgcStateDict, type VPGCInputs } from '@mllm/vpgc';
import { HostMLLM, type HostMLLMConfig, type Tokenizer } from '@mllm/models';
import { tinyHost, type TinyHostOptions } from '@mllm/models/testing';
import { AdamW, cosineScheduleWithWarmup, type AdamWConfig } from '@mllm/train';

function expectShape(label: string, tensor: tf.Tensor, expected: number[]): void {
  if (tensor.shape.join(',') !== expected.join(',')) throw new Error(`${label}: expected [${expected}], got [${tensor.shape}]`);
}

async function main(): Promise<void> {
  const choice: BackendChoice = await initBackend('cpu');
  setSeed(5);

  const args: ParrotMoEArgs = { hiddenSize: 8, intermediateSize: 12, numExperts: 2 };
  // @ts-expect-error hiddenSize is a number
  const rejected: ParrotMoEArgs = { hiddenSize: '8', intermediateSize: 12, numExperts: 2 };
  void rejected;
  const moe = new ParrotMoE(args);
  const visual = tf.randomNormal([1, 3, 8]) as tf.Tensor3D;
  const text = tf.randomNormal([1, 2, 8]) as tf.Tensor3D;
  const out: ParrotMoEOutputs = moe.forward({ visual, text });
  const output: tf.Tensor3D = out.output;
  expectShape('ParrotMoE', output, [1, 3, 8]);
  tf.dispose([out.output, out.routingWeights, out.textAttention]);
  // The threads entry, typed: options checked, the MoE's offload set and cleared.
  const threadOptions: ExpertThreadsOptions = { workers: 1, timeoutMs: 60_000 };
  // @ts-expect-error workers is a number
  const badThreadOptions: ExpertThreadsOptions = { workers: 'two' };
  void badThreadOptions;
  const threads: ExpertThreads = await ExpertThreads.start(moe, threadOptions);
  if (moe.expertOffload !== threads) throw new Error('ExpertThreads.start did not attach to the MoE');
  const threaded = moe.forward({ visual, text });
  expectShape('ParrotMoE on expert threads', threaded.output, [1, 3, 8]);
  tf.dispose([threaded.output, threaded.routingWeights, threaded.textAttention]);
  await threads.close();
  if (moe.expertOffload !== null) throw new Error('ExpertThreads.close did not detach');
  const dict: StateDict = moe.stateDict(PARROT_CHECKPOINT_PREFIX);
  const bytes: Uint8Array = saveSafetensors(dict);
  const reloaded = new ParrotMoE(args);
  reloaded.loadSafetensors(bytes);
  tf.dispose([...dict.values()]);

  // A gradient through the built output, checked by @mllm/core/testing's central differences.
  const report = checkGradients((x: tf.Tensor) => tf.sum(tf.square(moe.forward({ visual: x as tf.Tensor3D, text }).output)), [visual], {
    epsilon: 1e-2,
    rtol: 5e-2,
    atol: 5e-2,
    label: 'ParrotMoE input gradient',
  });
  void report;

  const wingsConfig: WingsConfig = { stage: 1, rank: 2 };
  void wingsConfig;
  const layer = new WingsLayer({ hiddenSize: 8, numHeads: 2, rank: 2, ropeTheta: 10000, stage: 1, routerMaxLength: 16 });
  const layerDict: StateDict = stateDict(layer);
  const layerKeys = [...layerDict.keys()];
  if (!layerKeys.some((k) => k.startsWith('attn_pool.')) || !layerKeys.some((k) => k.startsWith('attn_t_pool.'))) {
    throw new Error(`WingsLayer names: ${layerKeys}`);
  }
  tf.dispose([...layerDict.values()]);
  layer.dispose();

  const vpg = new QFormerVPG({
    qformer: { hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16, encoderWidth: 6 },
    numQueryTokens: 2,
    llmHiddenSize: 10,
  });
  const vpgc = new VPGC({ vpg, updateLayer: 0 });
  const inputs: VPGCInputs = {
    hidden: tf.randomNormal([1, 4, 10]) as tf.Tensor3D,
    lastPromptIndex: [3],
    imageFeatures: tf.randomNormal([1, 5, 6]) as tf.Tensor3D,
    imageToSample: [0],
    imageSpans: [[{ imageIndex: 0, start: 1, length: 2 }]],
  };
  const residual: tf.Tensor3D = vpgc.addResidual(inputs);
  expectShape('VPGC', residual, [1, 4, 10]);
  const vpgcDict = vpgcStateDict(vpgc);
  const names: string[] = [...vpgcDict.keys(), ...stateDict(vpg).keys()];
  if (!names.includes('llama_model.model.llm_proj.weight')) throw new Error(`VPGC export names: ${names}`);
  loadSafetensors(saveSafetensors(vpgcDict)).tensors.forEach((t) => t.dispose());

  // @mllm/models and @mllm/train, typed: a tiny host, its tokenizer, AdamW's config and a schedule.
  const hostConfig: HostMLLMConfig = {
    text: { vocabSize: 262, hiddenSize: 8, numLayers: 1, numHeads: 2, intermediateSize: 12, maxLength: 32 },
    vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 6, numLayers: 1, numHeads: 2, intermediateSize: 8 },
  };
  // @ts-expect-error numLayers is a number
  const badHostConfig: HostMLLMConfig = { ...hostConfig, text: { ...hostConfig.text, numLayers: 'one' } };
  void badHostConfig;
  const host = new HostMLLM({ config: hostConfig });
  const tokenizer: Tokenizer = host.tokenizer;
  if (tokenizer.encode('hi').length !== 2) throw new Error('the host byte tokenizer: "hi" is two tokens');
  const optimizer = new AdamW(host, { lr: 1e-3 });
  const optimizerConfig: AdamWConfig = optimizer.config();
  const lr: number = cosineScheduleWithWarmup({ warmupSteps: 1, totalSteps: 4 }).factor(2);
  if (!(lr > 0 && lr <= 1) || optimizerConfig.lr !== 1e-3) throw new Error(`AdamW config ${JSON.stringify(optimizerConfig)}, schedule ${lr}`);
  optimizer.dispose();
  host.dispose();
  // @mllm/models/testing: its tiny host is the package's own HostMLLM class (one copy across subpaths).
  const noOptions: TinyHostOptions = {};
  // @ts-expect-error the projector option is a factory, not a projector
  const badOptions: TinyHostOptions = { projector: 3 };
  void badOptions;
  const tiny = tinyHost(1, { numLayers: 1 }, {}, noOptions);
  if (!(tiny instanceof HostMLLM)) throw new Error('@mllm/models/testing: tinyHost() is not an @mllm/models HostMLLM');
  tiny.dispose();
  console.log(`[ts] ${choice.backend}: ParrotMoE [1,3,8], gradient check, WingsLayer, VPGC [1,4,10], HostMLLM + AdamW, tinyHost — typed checks passed`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
