import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DecoderHooks, type ForwardContext, isHostMemoryBackend } from '@mllm/core';
import {
  CharTokenizer, HostMLLM, IGNORE_INDEX, collateChat, disposeBatch, encodeChat, loadHostModel, saveHostModel, type MultimodalBatch,
} from '../index.js';
import { expectClose, expectNoLeaks, testBackend } from '@mllm/core/testing';
import { tinyHost, tinyImages, tinyTextConfig, tinyVisionConfig } from '@mllm/models/testing';

function twoImageBatch(model: ReturnType<typeof tinyHost>): { batch: MultimodalBatch; images: tf.Tensor4D } {
  const images = tinyImages(3);
  const [a, b, c] = tf.unstack(images) as tf.Tensor3D[];
  const batch = collateChat(model.tokenizer, [
    { messages: [{ role: 'user', content: '<image>\nCompare <image> please.' }, { role: 'assistant', content: 'Равны.' }], images: [a, b] },
    { messages: [{ role: 'user', content: '<image>颜色?' }, { role: 'assistant', content: 'أحمر' }], images: [c] },
  ]);
  tf.dispose([a, b, c]);
  return { batch, images };
}

/** Float64 log-softmax of one row. */
function logSoftmax(row: number[]): number[] {
  const m = Math.max(...row);
  const z = Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) + m;
  return row.map((v) => v - z);
}

describe('HostMLLM', () => {
  it('splices 2 images per sample with padding; shapes, spans, masks and names', () => {
    const model = tinyHost(1);
    const names = model.namedParameters().map(([n]) => n);
    expect(names).toContain('model.vision_tower.embeddings.patch_embedding.weight');
    expect(names).toContain('model.vision_tower.encoder.layers.0.self_attn.q_proj.bias');
    expect(names).toContain('model.mm_projector.0.weight');
    expect(names).toContain('model.mm_projector.2.bias');
    const { batch, images } = twoImageBatch(model);
    let ctx: ForwardContext | null = null;
    const seen: Record<string, unknown> = {};
    model.addHooks({
      beforeLayer: (layer, hidden, c) => {
        if (layer !== 0) return null;
        ctx = c;
        seen.input = c.inputEmbeddings.arraySync();
        seen.visual = c.visualTokens!.arraySync();
        seen.features = c.imageFeatures!.shape;
        seen.textMask = c.textMask.arraySync();
        seen.promptMask = c.promptMask.arraySync();
        seen.systemMask = c.systemMask.arraySync();
        seen.attentionMask = c.attentionMask.arraySync();
        seen.hasImage = Array.from(c.hasImage.dataSync());
        expectClose(hidden, c.inputEmbeddings, { rtol: 0, atol: 0 });
        return null;
      },
    });
    const out = model.forward(batch);
    const T = batch.inputIds.shape[1];
    const rows = batch.attentionMask!.sum(1).arraySync() as number[];
    const lengths = [rows[0] - 2 + 2 * 4, rows[1] - 1 + 4];
    expect(out.lengths).toEqual(lengths);
    expect(out.logits.shape).toEqual([2, Math.max(...lengths), 262]);
    expect(T).toBe(Math.max(...rows));
    const c = ctx! as ForwardContext;
    expect(c.isPrefill).toBe(true);
    expect(seen.features).toEqual([3, 4, 12]);
    expect(c.imageToSample).toEqual([0, 0, 1]);
    expect(seen.hasImage).toEqual([1, 1]);
    const input = seen.input as number[][][];
    const visual = seen.visual as number[][][];
    for (const spans of c.imageSpans) for (const s of spans) {
      const b = c.imageToSample[s.imageIndex];
      for (let k = 0; k < s.length; k++) expect(input[b][s.start + k]).toEqual(visual[s.imageIndex][k]);
    }
    // padding rows are zero vectors and masked
    const pad = (seen.attentionMask as number[][])[1];
    expect(pad.slice(lengths[1]).every((v) => v === 0)).toBe(true);
    expect(input[1][lengths[1]].every((v) => v === 0)).toBe(true);
    // masks: image positions are not text; supervised answer is not prompt; system turn flagged
    const textMask = seen.textMask as number[][];
    const promptMask = seen.promptMask as number[][];
    for (const s of c.imageSpans[0]) expect(textMask[0][s.start]).toBe(0);
    const labels = out.labels!.arraySync();
    labels.forEach((row, b) => row.forEach((l, p) => {
      const real = p < lengths[b];
      const isImage = c.imageSpans[b].some((s) => p >= s.start && p < s.start + s.length);
      expect(promptMask[b][p]).toBe(real && !isImage && l === IGNORE_INDEX ? 1 : 0);
    }));
    expect((seen.systemMask as number[][])[0].slice(0, 5)).toEqual([1, 1, 1, 1, 1]);
    // last prompt index = just before the first supervised label
    c.lastPromptIndex.forEach((idx, b) => {
      expect(labels[b][idx]).toBe(IGNORE_INDEX);
      expect(labels[b][idx + 1]).not.toBe(IGNORE_INDEX);
    });
    tf.dispose([out.logits, out.labels!, out.attentionMask, images]);
    disposeBatch(batch);
    model.dispose();
  });

  it('prepare runs once per forward before layer 0 (cleanup after); imageTables locate every spliced visual row', () => {
    const model = tinyHost(21);
    const { batch, images } = twoImageBatch(model);
    const events: string[] = [];
    let checked = 0;
    const hooks: DecoderHooks = {
      prepare: (ctx) => {
        events.push('prepare');
        const { imagesOfSample, visualRows, visualPositions } = ctx.imageTables;
        expect(imagesOfSample).toEqual(ctx.imageSpans.map((spans) => spans.map((s) => s.imageIndex)));
        // Independent of the tables' construction: image tokens are the real, non-text positions, and the
        // spliced layer-0 embedding there is the visual row the table names.
        const real = ctx.attentionMask.arraySync() as number[][];
        const text = ctx.textMask.arraySync() as number[][];
        const embeddings = ctx.inputEmbeddings.arraySync() as number[][][];
        const [N, Ni, H] = ctx.visualTokens!.shape;
        const flat = (tf.reshape(ctx.visualTokens!, [N * Ni, H]).arraySync() as number[][]);
        real.forEach((row, b) => {
          const imagePositions = row.flatMap((r, t) => (r === 1 && text[b][t] === 0 ? [t] : []));
          expect(visualPositions[b]).toEqual(imagePositions);
          visualRows[b].forEach((r, k) => {
            expect(embeddings[b][visualPositions[b][k]]).toEqual(flat[r]);
            checked++;
          });
        });
        return () => events.push('cleanup');
      },
      beforeLayer: (layerIndex) => {
        events.push(`layer ${layerIndex}`);
        return null;
      },
    };
    const handle = model.addHooks(hooks);
    const out = model.forward(batch);
    expect(events).toEqual(['prepare', 'layer 0', 'layer 1', 'cleanup']);
    expect(checked).toBe(3 * 4); // 3 images × 4 visual tokens
    handle.remove();
    tf.dispose([out.logits, out.labels!, out.attentionMask, images]);
    disposeBatch(batch);
    model.dispose();
  });

  it('runs transformVisual before splicing with prompt-only text embeddings', () => {
    const model = tinyHost(2, {}, { selectFeature: 'cls_patch' });
    const { batch, images } = twoImageBatch(model);
    const recorded: Record<string, unknown> = {};
    model.addHooks({
      transformVisual: ({ visual, textEmbeddings, promptTextMask, imageToSample }) => {
        recorded.visual = visual.arraySync();
        recorded.textShape = textEmbeddings.shape;
        recorded.promptTextMask = promptTextMask.arraySync();
        recorded.imageToSample = imageToSample;
        return tf.mul(visual, 2) as tf.Tensor3D;
      },
      beforeLayer: (layer, _h, c) => {
        if (layer === 0) recorded.spliced = c.visualTokens!.arraySync();
        return null;
      },
    });
    const out = model.forward(batch);
    expect((recorded.visual as number[][][])[0].length).toBe(5); // cls_patch: CLS + 4 patches
    expectClose(recorded.spliced as number[][][], (recorded.visual as number[][][]).map((m) => m.map((r) => r.map((v) => 2 * v))), { rtol: 1e-6, atol: 0 });
    expect(recorded.textShape).toEqual([2, batch.inputIds.shape[1], 16]);
    const ids = batch.inputIds.arraySync();
    const labels = batch.labels!.arraySync();
    const mask = batch.attentionMask!.arraySync();
    expect(recorded.promptTextMask).toEqual(ids.map((row, b) => row.map((id, t) =>
      mask[b][t] === 1 && labels[b][t] === IGNORE_INDEX && id !== model.tokenizer.imageId ? 1 : 0)));
    expect(recorded.imageToSample).toEqual([0, 0, 1]);
    tf.dispose([out.logits, out.labels!, out.attentionMask, images]);
    disposeBatch(batch);
    model.dispose();
  });

  it('gives each sample the same logits alone and in a padded batch', () => {
    const model = tinyHost(3);
    const { batch, images } = twoImageBatch(model);
    const out = model.forward(batch);
    const [, , c] = tf.unstack(images) as tf.Tensor3D[];
    const alone = collateChat(model.tokenizer, [{ messages: [{ role: 'user', content: '<image>颜色?' }, { role: 'assistant', content: 'أحمر' }], images: [c] }]);
    const single = model.forward(alone);
    const n = out.lengths[1];
    expect(single.lengths).toEqual([n]);
    expectClose(tf.slice(out.logits, [1, 0, 0], [1, n, 262]), single.logits, { rtol: 1e-4, atol: 1e-5 });
    tf.dispose([out.logits, out.labels!, out.attentionMask, single.logits, single.labels!, single.attentionMask, images, c]);
    disposeBatch(batch); disposeBatch(alone);
    model.dispose();
  });

  it('loss equals a float64 cross-entropy over the shifted supervised labels', () => {
    const model = tinyHost(4);
    const { batch, images } = twoImageBatch(model);
    const loss = model.loss(batch).dataSync()[0];
    const out = model.forward(batch);
    const logits = out.logits.arraySync();
    const labels = out.labels!.arraySync();
    let sum = 0, count = 0;
    labels.forEach((row, b) => row.forEach((l, p) => {
      if (p === 0 || l === IGNORE_INDEX) return;
      sum -= logSoftmax(logits[b][p - 1])[l];
      count++;
    }));
    expect(count).toBe(new TextEncoder().encode('Равны.').length + 1 + new TextEncoder().encode('أحمر').length + 1); // + <|im_end|> each
    expect(loss).toBeCloseTo(sum / count, 4);
    tf.dispose([out.logits, out.labels!, out.attentionMask, images]);
    disposeBatch(batch);
    model.dispose();
  });

  it('KV-cache generation equals full re-run generation and teacher forcing; isPrefill only on prefill', () => {
    const model = tinyHost(5);
    const images = tinyImages(3, 11);
    const prompts = ['<image>Describe <image>.', '<image>Что это?'];
    const flags: boolean[] = [];
    let systemCounts: number[] = [];
    const handle = model.addHooks({
      beforeLayer: (layer, _h, c) => {
        if (layer === 1) flags.push(c.isPrefill);
        if (layer === 1 && c.isPrefill) systemCounts = c.systemMask.sum(1).arraySync() as number[];
        return null;
      },
    });
    // every decode step compiles new shaders on software WebGPU: fewer steps there
    const steps = testBackend() === 'webgpu' ? 4 : 6;
    const cached = model.generate(prompts, images, { maxNewTokens: steps, eosTokenIds: [] });
    expect(flags).toEqual([true, ...new Array(steps - 1).fill(false)]);
    const systemTurn = encodeChat(model.tokenizer, [{ role: 'user', content: 'x' }]).systemMask.reduce((a, b) => a + b, 0);
    expect(systemCounts).toEqual([systemTurn, systemTurn]);
    flags.length = 0;
    const full = model.generate(prompts, images, { maxNewTokens: steps, eosTokenIds: [], useCache: false });
    expect(flags).toEqual(new Array(steps).fill(true));
    expect(cached.tokenIds).toEqual(full.tokenIds);
    expect(cached.tokenIds.map((t) => t.length)).toEqual([steps, steps]);
    handle.remove();
    // a hook that needs full sequences turns the cache off
    flags.length = 0;
    const h2 = model.addHooks({ requiresFullSequence: true, beforeLayer: (layer, _h, c) => { if (layer === 0) flags.push(c.isPrefill); return null; } });
    const forced = model.generate(prompts, images, { maxNewTokens: 3, eosTokenIds: [] });
    expect(flags).toEqual([true, true, true]);
    expect(forced.tokenIds).toEqual(cached.tokenIds.map((t) => t.slice(0, 3)));
    h2.remove();
    // teacher forcing: the argmax after each prefix is the next generated token
    const [i0, i1, i2] = tf.unstack(images) as tf.Tensor3D[];
    const perPrompt = [[i0, i1], [i2]];
    prompts.forEach((prompt, b) => {
      const promptIds = encodeChat(model.tokenizer, [{ role: 'user', content: prompt }], { addGenerationPrompt: true }).inputIds;
      const ids = [...promptIds, ...cached.tokenIds[b]];
      const imgs = tf.stack(perPrompt[b]) as tf.Tensor4D;
      const out = model.forward({ inputIds: tf.tensor2d([ids], [1, ids.length], 'int32'), images: imgs });
      const logits = out.logits.arraySync()[0];
      const n = out.lengths[0];
      cached.tokenIds[b].forEach((token, k) => {
        const row = logits[n - steps - 1 + k];
        expect(row.indexOf(Math.max(...row))).toBe(token);
      });
      tf.dispose([out.logits, out.attentionMask, imgs]);
    });
    tf.dispose([i0, i1, i2, images]);
    model.dispose();
  });

  it('stops at a stop token and decodes text', () => {
    const model = tinyHost(6);
    const first = model.generate('Hi', null, { maxNewTokens: 4, eosTokenIds: [] });
    const stopAt = first.tokenIds[0][2];
    const stopped = model.generate(['Hi'], null, { maxNewTokens: 4, eosTokenIds: [stopAt] });
    expect(stopped.tokenIds[0]).toEqual(first.tokenIds[0].slice(0, first.tokenIds[0].indexOf(stopAt)));
    expect(stopped.texts[0]).toBe(model.tokenizer.decode(stopped.tokenIds[0], { skipSpecialTokens: true }));
    model.dispose();
  });

  it('scoreOptions equals a manual float64 log-softmax sum per option', () => {
    const model = tinyHost(7);
    const image = tinyImages(1, 5);
    const prompt = '<image>\nQual é a cor? A. azul B. vermelho';
    const options = ['A', 'B. vermelho', 'ıİ'];
    const detailed = model.scoreOptionsDetailed(prompt, image, options);
    const sums = model.scoreOptions(prompt, image, options);
    const means = model.scoreOptions(prompt, image, options, { reduction: 'mean' });
    const promptIds = encodeChat(model.tokenizer, [{ role: 'user', content: prompt }], { addGenerationPrompt: true }).inputIds;
    options.forEach((option, k) => {
      const optionIds = model.tokenizer.encode(option);
      const ids = [...promptIds, ...optionIds];
      const out = model.forward({ inputIds: tf.tensor2d([ids], [1, ids.length], 'int32'), images: image });
      const logits = out.logits.arraySync()[0];
      const n = out.lengths[0];
      let expected = 0;
      optionIds.forEach((id, j) => { expected += logSoftmax(logits[n - optionIds.length - 1 + j])[id]; });
      expect(sums[k]).toBeCloseTo(expected, 3);
      expect(detailed[k].numTokens).toBe(optionIds.length);
      expect(means[k]).toBeCloseTo(expected / optionIds.length, 3);
      tf.dispose([out.logits, out.attentionMask]);
    });
    expect(() => model.scoreOptions(prompt, null, options)).toThrow(/1 image placeholders but images has 0 images/);
    expect(() => model.scoreOptions(prompt, image, [])).toThrow(/options must be a non-empty string array/);
    image.dispose();
    model.dispose();
  });

  it('rejects one image without the batch dimension and 0..255 pixels, naming the argument; leaks nothing', () => {
    const model = tinyHost(8);
    const batched = tinyImages(1);
    const single = tf.squeeze(batched, [0]) as unknown as tf.Tensor4D; // [8, 8, 3]
    const bytes = tf.mul(batched, 255) as tf.Tensor4D; // the same image as 0..255 values
    const before = tf.memory().numTensors;
    expect(() => model.generate('<image>a', single)).toThrow(
      'HostMLLM: images must be [numImages, S, S, C] (rank 4), got shape [8,8,3] (one image without the batch dimension? pass images.expandDims(0), shape [1, 8,8,3])',
    );
    if (isHostMemoryBackend()) {
      expect(() => model.generate('<image>a', bytes)).toThrow(/^HostMLLM: images must hold pixel values in \[0, 1\], got values in \[\d.*, 2\d\d\.?\d*\] \(0\.\.255 pixel values\? divide by 255\)$/);
      expect(() => model.scoreOptions('<image>x', bytes, ['A', 'B'])).toThrow(/images must hold pixel values in \[0, 1\]/);
    } else {
      // GPU backends: the range is not read back (documented on checkImageBatch), so forward never syncs
      expect(model.generate('<image>a', bytes, { maxNewTokens: 1, eosTokenIds: [] }).tokenIds[0]).toHaveLength(1);
    }
    expect(tf.memory().numTensors).toBe(before);
    // the same image in [0, 1] with its batch dimension is accepted
    expect(model.generate('<image>a', batched, { maxNewTokens: 1, eosTokenIds: [] }).tokenIds[0]).toHaveLength(1);
    tf.dispose([batched, single, bytes]);
    model.dispose();
  });

  it('leaks no tensors across forward, loss, gradients, generate and scoreOptions', () => {
    const model = tinyHost(8);
    const { batch, images } = twoImageBatch(model);
    model.addHooks({ attentionProbsLayers: [0], afterAttention: (_l, a) => tf.add(a.residual, tf.mul(tf.sum(a.attentionProbs ?? tf.scalar(0)), 0)) as tf.Tensor3D });
    expectNoLeaks(() => model.forward(batch));
    expectNoLeaks(() => model.loss(batch));
    expectNoLeaks(() => tf.variableGrads(() => model.loss(batch), model.trainableVariables()));
    expectNoLeaks(() => model.generate(['<image>a', '<image><image>bc'], images, { maxNewTokens: 2, eosTokenIds: [] }));
    expectNoLeaks(() => model.generate(['<image>a', '<image><image>bc'], images, { maxNewTokens: 2, useCache: false }));
    const one = tf.slice(images, [0], [1]) as tf.Tensor4D;
    expectNoLeaks(() => model.scoreOptions('<image>x', one, ['A', 'B']));
    const before = tf.memory().numTensors;
    expect(() => model.generate(['<image>a'], images)).toThrow(/1 image placeholders but images has 3 images/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([one, images]);
    disposeBatch(batch);
    model.dispose();
  });

  it('trains all parts: gradients reach vision tower, projector, embeddings and head', () => {
    const model = tinyHost(9);
    const { batch, images } = twoImageBatch(model);
    const { value, grads } = tf.variableGrads(() => model.loss(batch), model.trainableVariables());
    const byName = new Map(model.namedParameters().map(([n, p]) => [(p.variable.read() as tf.Variable).name, n]));
    const nonzero = new Set<string>();
    for (const [name, g] of Object.entries(grads)) if (tf.max(tf.abs(g)).dataSync()[0] > 0) nonzero.add(byName.get(name) ?? name);
    for (const n of ['model.vision_tower.embeddings.patch_embedding.weight', 'model.mm_projector.0.weight', 'model.embed_tokens.weight', 'lm_head.weight', 'model.layers.1.mlp.down_proj.weight']) {
      expect(nonzero.has(n), n).toBe(true);
    }
    tf.dispose([value, images, ...Object.values(grads)]);
    disposeBatch(batch);
    model.dispose();
  });

  // each loss evaluation costs ~1.5 s on software WebGPU
  it.skipIf(testBackend() === 'webgpu')('loss gradients agree with central differences (embedding, projector, vision, attention)', () => {
    const model = tinyHost(14);
    const { batch, images } = twoImageBatch(model);
    const params = new Map(model.namedParameters());
    const probes: Array<[string, number]> = [
      ['model.embed_tokens.weight', model.tokenizer.imStartId * 16 + 3],
      ['model.mm_projector.0.weight', 5],
      ['model.vision_tower.embeddings.patch_embedding.weight', 7],
      ['model.layers.0.self_attn.k_proj.weight', 11],
      ['model.vision_tower.embeddings.class_embedding', 2],
    ];
    const variables = probes.map(([n]) => params.get(n)!.variable.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(() => model.loss(batch), variables);
    const h = 1e-2;
    probes.forEach(([name], i) => {
      const variable = variables[i];
      const original = variable.clone();
      const at = (delta: number) => {
        const values = original.dataSync().slice();
        values[probes[i][1]] += delta;
        variable.assign(tf.tensor(values, original.shape));
        const l = model.loss(batch);
        const v = l.dataSync()[0];
        l.dispose();
        return v;
      };
      const numeric = (at(h) - at(-h)) / (2 * h);
      variable.assign(original);
      original.dispose();
      const analytic = grads[variable.name].dataSync()[probes[i][1]];
      expect(Math.abs(analytic - numeric), `${name}: analytic ${analytic} numeric ${numeric}`).toBeLessThan(2e-3 + 2e-2 * Math.abs(numeric));
      expect(Math.abs(analytic), name).toBeGreaterThan(1e-5);
    });
    tf.dispose([value, images, ...Object.values(grads)]);
    disposeBatch(batch);
    model.dispose();
  });

  it('rejects bad batches with clear errors', () => {
    const model = tinyHost(10);
    const ids = tf.tensor2d([[1, 2, 3]], [1, 3], 'int32');
    expect(() => model.forward({ inputIds: ids, attentionMask: tf.tensor2d([[1, 0, 1]], [1, 3], 'int32') }))
      .toThrow(/attentionMask row 0 must be right-padded/);
    expect(() => model.forward({ inputIds: tf.tensor2d([[1, 999]], [1, 2], 'int32') })).toThrow(/inputIds\[0\]\[1\] must be an integer in \[0, 262\), got 999/);
    const img = tf.tensor2d([[1, model.tokenizer.imageId]], [1, 2], 'int32');
    expect(() => model.forward({ inputIds: img })).toThrow(/1 image placeholders but 0 images/);
    const small = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    expect(() => model.forward({ inputIds: img, images: small })).toThrow(/images must be \[numImages, 8, 8, 3\], got \[1,4,4,3\]/);
    expect(() => model.loss({ inputIds: ids })).toThrow(/batch.labels \[B, T\] are required/);
    tf.dispose([ids, img, small]);
    model.dispose();
  });

  it('saves and loads (config.json + model.safetensors) with identical outputs', async () => {
    const model = tinyHost(12, { tieEmbeddings: true }, { selectFeature: 'cls_patch' });
    const dir = await mkdtemp(join(tmpdir(), 'mllm-host-'));
    try {
      await saveHostModel(model, dir);
      const loaded = await loadHostModel(dir);
      expect(loaded.visionTower.visionConfig.selectFeature).toBe('cls_patch');
      expect(loaded.textConfig.tieEmbeddings).toBe(true);
      expect(loaded.namedParameters().map(([n]) => n)).toEqual(model.namedParameters().map(([n]) => n));
      const { batch, images } = twoImageBatch(model);
      const a = model.forward(batch);
      const b = loaded.forward(batch);
      expectClose(b.logits, a.logits, { rtol: 0, atol: 0 });
      tf.dispose([a.logits, a.labels!, a.attentionMask, b.logits, b.labels!, b.attentionMask, images]);
      disposeBatch(batch);
      loaded.dispose();
      await expect(loadHostModel(join(dir, 'missing'))).rejects.toThrow(/cannot read .*config.json/);
      // a character-level tokenizer travels in config.json
      const chars = CharTokenizer.fromTexts(['Какого цвета? 颜色 لون ılık']);
      const charModel = new HostMLLM({ config: { text: tinyTextConfig({ vocabSize: chars.vocabSize }), vision: tinyVisionConfig() }, tokenizer: chars });
      await saveHostModel(charModel, join(dir, 'char'));
      const charLoaded = await loadHostModel(join(dir, 'char'));
      expect(charLoaded.tokenizer).toBeInstanceOf(CharTokenizer);
      expect(charLoaded.tokenizer.encode('颜色 ılık')).toEqual(chars.encode('颜色 ılık'));
      expect(charLoaded.generate('颜色', null, { maxNewTokens: 3, eosTokenIds: [] }).tokenIds)
        .toEqual(charModel.generate('颜色', null, { maxNewTokens: 3, eosTokenIds: [] }).tokenIds);
      charModel.dispose();
      charLoaded.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
      model.dispose();
    }
  });

  // a few dozen optimizer steps take minutes on software WebGPU
  it.skipIf(testBackend() === 'webgpu')(
    'overfits a fixed batch with tf.train.adam (loss < 0.05)', () => {
      const model = tinyHost(13, { hiddenSize: 32, numHeads: 2, intermediateSize: 48, numLayers: 1 });
      const images = tinyImages(3);
      const [a, b, c] = tf.unstack(images) as tf.Tensor3D[];
      const batch = collateChat(model.tokenizer, [
        { messages: [{ role: 'user', content: '<image><image>Q?' }, { role: 'assistant', content: 'Да.' }], images: [a, b] },
        { messages: [{ role: 'user', content: '<image>颜色' }, { role: 'assistant', content: 'أحمر' }], images: [c] },
      ], { systemPrompt: null });
      tf.dispose([a, b, c]);
      const optimizer = tf.train.adam(0.02);
      const variables = model.trainableVariables();
      let loss = Infinity;
      let steps = 0;
      for (; steps < 300 && loss >= 0.05; steps++) {
        const value = optimizer.minimize(() => model.loss(batch), true, variables)!;
        loss = value.dataSync()[0];
        value.dispose();
      }
      expect(loss).toBeLessThan(0.05); // measured: 23 steps, ~5 s on cpu
      optimizer.dispose();
      tf.dispose(images);
      disposeBatch(batch);
      model.dispose();
    });
});

describe('HostMLLM is not a tfjs-layers layer', () => {
  it('call and getConfig (what model.save reads) throw naming forward/generate and saveHostModel; the class is not registered', () => {
    const host = tinyHost(3);
    const message = /^HostMLLM is not a tfjs-layers layer: use forward\(batch\), generate\(\) or scoreOptions\(\); save with saveHostModel and load with loadHostModel/;
    expect(() => host.call()).toThrowError(message);
    expect(() => host.getConfig()).toThrowError(message);
    expect(tf.serialization.SerializationMap.getMap().classNameMap['mllm>HostMLLM']).toBeUndefined();
    host.dispose();
  });
});
