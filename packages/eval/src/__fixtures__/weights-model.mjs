// A model module that registers the cpu backend and stores a weight tensor while it is created,
// before mllm-eval chooses a backend (the CLI test checks that tfjs's Node.js hint stays quiet).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

export async function createModel() {
  await tf.setBackend('cpu');
  const weight = tf.tensor1d([1, 2, 3]);
  return {
    name: 'weights-model',
    generate: () => (weight.dataSync()[0] === 1 ? 'A' : 'B'),
    dispose: () => weight.dispose(),
  };
}
