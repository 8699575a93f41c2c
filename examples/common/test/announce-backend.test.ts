/**
 * `announceBackend`: the example's one line about its backend, printed before its workers start.
 * Runs in every project: the line names the backend the project's own request starts.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { testBackend } from '@mllm/core/testing';
import { announceBackend } from '../src/index.js';

describe('announceBackend', () => {
  it('starts the request and prints exactly one line naming the backend it started', async () => {
    const request = testBackend();
    let text = '';
    const backend = await announceBackend(request, { write: (chunk: string) => (text += chunk) });
    expect(backend).toBe(tf.getBackend());
    expect(backend).toBe(request);
    expect(text.endsWith('\n')).toBe(true);
    expect(text.trimEnd().split('\n')).toHaveLength(1);
    expect(text.startsWith(`backend: ${request} (`)).toBe(true);
  });
});
