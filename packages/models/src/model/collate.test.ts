import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ByteTokenizer, IGNORE_INDEX } from '../tokenizer/byte-tokenizer.js';
import { collateChat, disposeBatch } from './collate.js';
import { shiftedCrossEntropy } from './loss.js';

describe('collateChat', () => {
  const tokenizer = new ByteTokenizer();

  it('rejects a conversation with no assistant turn (its loss would be a silent -0), naming the sample and roles', () => {
    const before = tf.memory().numTensors;
    const samples = [
      { messages: [{ role: 'user' as const, content: 'hi' }, { role: 'assistant' as const, content: 'hello' }] },
      { messages: [{ role: 'system' as const, content: 's' }, { role: 'user' as const, content: 'only a question' }] },
    ];
    expect(() => collateChat(tokenizer, samples)).toThrow(
      "collateChat: samples[1].messages supervise no token (roles: system, user); a training conversation needs a non-empty 'assistant' turn",
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('supervises the assistant turn of a valid conversation, so its loss is a positive number', () => {
    const batch = collateChat(tokenizer, [{ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }]);
    const labels = batch.labels!.arraySync() as number[][];
    expect(labels[0].filter((l) => l !== IGNORE_INDEX).length).toBeGreaterThanOrEqual('hello'.length);
    const [B, T] = batch.labels!.shape;
    const logits = tf.zeros([B, T, tokenizer.vocabSize]) as tf.Tensor3D; // uniform: loss = ln V
    const loss = shiftedCrossEntropy(logits, batch.labels!.dataSync() as Int32Array);
    expect(loss.dataSync()[0]).toBeCloseTo(Math.log(tokenizer.vocabSize), 5);
    tf.dispose([logits, loss]);
    disposeBatch(batch);
  });
});
