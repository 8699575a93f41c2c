import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageProcessorFromConfig, loadImageProcessor, PREPROCESSOR_CONFIG_FILE } from './load.js';
import { clipImageProcessor, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, siglipImageProcessor } from './processors.js';
import type { RgbBytes } from './resize.js';

// The preprocessor_config.json files of the towers the references use, as published.
const CLIP_L_336 = {
  crop_size: 336,
  do_center_crop: true,
  do_normalize: true,
  do_resize: true,
  feature_extractor_type: 'CLIPFeatureExtractor',
  image_mean: [...OPENAI_CLIP_MEAN],
  image_std: [...OPENAI_CLIP_STD],
  resample: 3,
  size: 336,
};
const SIGLIP_SO400M = {
  do_normalize: true,
  do_rescale: true,
  do_resize: true,
  image_mean: [0.5, 0.5, 0.5],
  image_processor_type: 'SiglipImageProcessor',
  image_std: [0.5, 0.5, 0.5],
  processor_class: 'SiglipProcessor',
  resample: 3,
  rescale_factor: 0.00392156862745098,
  size: { height: 384, width: 384 },
};

const dir = mkdtempSync(join(tmpdir(), 'mllm-image-processor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function noise(height: number, width: number): RgbBytes {
  return { height, width, data: Uint8Array.from({ length: height * width * 3 }, (_, i) => (i * 97 + 13) % 256) };
}

describe('imageProcessorFromConfig / loadImageProcessor (preprocessor_config.json)', () => {
  it("resolves the published CLIP-L/336 and SigLIP so400m configs to the references' processors", () => {
    const clip = imageProcessorFromConfig(CLIP_L_336);
    expect(clip.kind).toBe('clip');
    expect(clip.options).toEqual({ ...clipImageProcessor({ shortestEdge: 336, cropSize: 336 }).options });
    const siglip = imageProcessorFromConfig(SIGLIP_SO400M, { padToSquare: true });
    expect(siglip.kind).toBe('siglip');
    expect(siglip.options).toEqual(siglipImageProcessor({ size: 384, padToSquare: true }).options);
    // …and give the same pixels.
    const image = noise(20, 30);
    const small = imageProcessorFromConfig({ ...CLIP_L_336, size: { shortest_edge: 12 }, crop_size: { height: 10, width: 10 } });
    expect(Array.from(small.pixelValues(image).data)).toEqual(Array.from(clipImageProcessor({ shortestEdge: 12, cropSize: 10 }).pixelValues(image).data));
  });

  it("fills missing keys with the HF class's defaults and honours do_* switches", () => {
    expect(imageProcessorFromConfig({ image_processor_type: 'CLIPImageProcessor' }).options).toEqual(clipImageProcessor().options);
    const siglip = imageProcessorFromConfig({ image_processor_type: 'SiglipImageProcessor' });
    expect(siglip.options.resize).toEqual({ height: 224, width: 224 });
    expect(siglip.options.centerCrop).toBeNull();
    const bare = imageProcessorFromConfig({ image_processor_type: 'SiglipImageProcessor', do_resize: false, do_rescale: false, do_normalize: false });
    const image = noise(3, 5);
    const out = bare.pixelValues(image); // raw levels, channels first
    expect([out.height, out.width]).toEqual([3, 5]);
    expect(out.data[0]).toBe(image.data[0]);
    expect(out.data[15]).toBe(image.data[1]);
  });

  it('loads from a directory and names the file in every error', async () => {
    writeFileSync(join(dir, PREPROCESSOR_CONFIG_FILE), JSON.stringify(CLIP_L_336));
    expect((await loadImageProcessor(dir)).options.centerCrop).toEqual({ height: 336, width: 336 });
    const missing = join(dir, 'absent');
    await expect(loadImageProcessor(missing)).rejects.toThrow(/loadImageProcessor: could not read ".*absent\/preprocessor_config.json"/);
    const broken = mkdtempSync(join(dir, 'broken-'));
    writeFileSync(join(broken, PREPROCESSOR_CONFIG_FILE), '{"size": ');
    await expect(loadImageProcessor(broken)).rejects.toThrow(/preprocessor_config.json" is not valid JSON/);
    writeFileSync(join(broken, PREPROCESSOR_CONFIG_FILE), JSON.stringify({ ...SIGLIP_SO400M, image_std: [0.5, 0, 0.5] }));
    await expect(loadImageProcessor(broken)).rejects.toThrow(/preprocessor_config.json": imageProcessorFromConfig: image_std must be 3 finite numbers > 0/);
    await expect(loadImageProcessor('')).rejects.toThrow(/dir must be a directory path/);
  });

  it('rejects bad configs naming the key, the expected and the actual value', () => {
    const cases: Array<[unknown, RegExp]> = [
      [[1, 2], /config must be a preprocessor_config.json object, got a plain array/],
      [{ image_processor_type: 'ViTImageProcessor' }, /image_processor_type must be one of CLIPImageProcessor, .* got the string "ViTImageProcessor"/],
      [{ ...CLIP_L_336, size: -3 }, /size must be a positive integer, got -3/],
      [{ ...CLIP_L_336, size: { shortest_edge: 336, longest_edge: 500 } }, /size must be without longest_edge/],
      [{ ...CLIP_L_336, crop_size: { shortest_edge: 3 } }, /crop_size must be an integer or \{"height": h, "width": w\}/],
      [{ ...CLIP_L_336, resample: 0 }, /resample must be a PIL filter code 1–5 \(3 = BICUBIC; NEAREST, 0, is not implemented\), got 0/],
      [{ ...CLIP_L_336, do_resize: 'yes' }, /do_resize must be true or false, got the string "yes"/],
      [{ ...CLIP_L_336, image_mean: [0.5, 0.5] }, /image_mean must be 3 finite numbers \(R, G, B\), got a plain array \(length 2\)/],
      [{ ...SIGLIP_SO400M, rescale_factor: 0 }, /rescale_factor must be a finite number > 0, got 0/],
    ];
    for (const [config, message] of cases) expect(() => imageProcessorFromConfig(config)).toThrow(message);
    expect(() => imageProcessorFromConfig(SIGLIP_SO400M, { padToSquare: 'pad' as never })).toThrow(/options.padToSquare must be a boolean/);
  });
});
