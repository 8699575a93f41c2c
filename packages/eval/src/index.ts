/**
 * @mllm/eval: multilingual multiple-choice benchmark harness (MMMB, multilingual MMBench).
 * Only what is exported here is public.
 */
export * from './languages.js';
export * from './base64.js';
// The image codec moved to @mllm/models (image/codec.ts); re-exported so this package's API is unchanged.
export {
  assertPixelImage,
  decodeImage,
  encodeJpeg,
  encodePng,
  ImageDecodeError,
  pixelImageToTensor,
  sniffImageFormat,
  type ImageDecoder,
  type PixelImage,
} from '@mllm/models/image';
export * from './bad-row.js';
export * from './tsv-source.js';
export * from './benchmark-reader.js';
export * from './tsv-writer.js';
export * from './prompt.js';
export * from './answer-extraction.js';
export * from './eval-model.js';
export * from './host-model-adapter.js';
export * from './pretrained-adapter.js';
export * from './backend.js';
export * from './evaluate.js';
export * from './published-results.js';
export * from './report.js';
export * from './progress.js';
export { runCli, USAGE, type CliIo } from './cli-main.js';
