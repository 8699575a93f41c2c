// Child process of backend/wasm-threads.test.ts: starts the wasm backend with the XNNPACK thread
// count in argv[2] ('auto' or a number), runs products and gradients through @mllm/core's kernels
// (built dist), and prints one JSON line: the thread count, the backend's reason, and a hash of
// every result's float32 bits. It must end by itself (idle pthread workers must not keep it alive).
// argv[3] = 'cjs' loads @mllm/core's CommonJS build (and tfjs' CommonJS bundles) through require.
// argv[4] breaks the first pthread worker emscripten creates, to check the threaded start gives up
// instead of waiting forever: 'exit' ends it before it loads, 'silent' drops its 'load' command.
import { createRequire } from 'node:module';
import workerThreads from 'node:worker_threads';

const require = createRequire(import.meta.url);
const format = process.argv[3] ?? 'esm';
const tf = format === 'cjs' ? require('@tensorflow/tfjs-core') : await import('@tensorflow/tfjs-core');
const core = format === 'cjs' ? require('@mllm/core') : await import('@mllm/core');
const { batchMatMul, initBackend, matMul2d, matMul2dTransposeB, maskedSoftmax, wasmBackendThreads } = core;

const sabotage = process.argv[4];
if (sabotage === 'exit' || sabotage === 'silent') {
  const Original = workerThreads.Worker;
  let broken = false;
  workerThreads.Worker = class BrokenFirstWorker extends Original {
    constructor(...args) {
      super(...args);
      if (broken) return;
      broken = true;
      if (sabotage === 'exit') void this.terminate();
      else {
        const post = this.postMessage.bind(this);
        this.postMessage = (message, transfer) => (message?.cmd === 'load' ? undefined : post(message, transfer));
      }
    }
  };
}

const requested = process.argv[2];
const choice = await initBackend('wasm', { wasmThreads: requested === 'auto' ? 'auto' : Number(requested) });

let hash = 0x811c9dc5;
function absorb(t) {
  const bits = new Uint32Array(Float32Array.from(t.dataSync()).buffer);
  for (const b of bits) hash = Math.imul(hash ^ b, 0x01000193) >>> 0;
}
const shapes = [[32, 768, 768], [577, 1024, 1024], [257, 1408, 768], [7, 5, 3]];
for (const [m, k, n] of shapes) {
  tf.tidy(() => {
    const a = tf.randomNormal([m, k], 0, 1, 'float32', m);
    const b = tf.randomNormal([k, n], 0, 1, 'float32', n);
    absorb(matMul2d(a, b));
    absorb(matMul2dTransposeB(tf.randomNormal([m, n], 0, 1, 'float32', 3), b));
    const f = (x, w) => tf.sum(tf.mul(tf.sigmoid(matMul2d(x, w)), matMul2d(x, w)));
    for (const g of tf.grads(f)([a, b])) absorb(g);
  });
}
tf.tidy(() => {
  const q = tf.randomNormal([8, 150, 16], 0, 1, 'float32', 5);
  const k = tf.randomNormal([8, 16, 150], 0, 1, 'float32', 6);
  const scores = batchMatMul(q, k);
  absorb(scores);
  absorb(maskedSoftmax(scores, null));
  for (const g of tf.grads((x, y) => tf.sum(tf.square(batchMatMul(x, y))))([q, k])) absorb(g);
});
console.log(JSON.stringify({ format, threads: await wasmBackendThreads(), reason: choice.reason, hash, tensors: tf.memory().numTensors }));
