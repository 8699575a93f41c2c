/**
 * Scenes of a few coloured shapes: the palette shared by the drawing canvas and the training data,
 * a plain-JS rasterizer (Node, training data) and the box-filter downsampling that turns the
 * page's canvas pixels into the model's `[S, S, 3]` input (the same arithmetic in every browser).
 */
export type PaletteColour = 'red' | 'green' | 'blue' | 'yellow' | 'black' | 'white';
export type SceneShape = 'circle' | 'square' | 'triangle';

export const PALETTE: ReadonlyArray<{ name: PaletteColour; rgb: [number, number, number]; css: string }> = [
  { name: 'red', rgb: [230, 26, 26], css: 'rgb(230, 26, 26)' },
  { name: 'green', rgb: [26, 204, 51], css: 'rgb(26, 204, 51)' },
  { name: 'blue', rgb: [38, 64, 242], css: 'rgb(38, 64, 242)' },
  { name: 'yellow', rgb: [242, 230, 26], css: 'rgb(242, 230, 26)' },
  { name: 'black', rgb: [20, 20, 20], css: 'rgb(20, 20, 20)' },
  { name: 'white', rgb: [255, 255, 255], css: 'rgb(255, 255, 255)' },
];

export const BACKGROUND_RGB: [number, number, number] = [255, 255, 255];

/** A shape centred at (x, y) with half-size `size/2`, all in units of the image side. */
export interface SceneObject {
  shape: SceneShape;
  colour: PaletteColour;
  x: number;
  y: number;
  size: number;
}

export function paletteRgb(colour: PaletteColour): [number, number, number] {
  const entry = PALETTE.find((p) => p.name === colour);
  if (!entry) throw new Error(`paletteRgb: colour must be one of ${PALETTE.map((p) => p.name).join(', ')}, got ${String(colour)}`);
  return entry.rgb;
}

/** Is the point (u, v) (units of the side) inside the object? Triangle: apex up. */
export function insideObject(o: SceneObject, u: number, v: number): boolean {
  const r = o.size / 2;
  const dx = u - o.x;
  const dy = v - o.y;
  if (o.shape === 'circle') return dx * dx + dy * dy <= r * r;
  if (o.shape === 'square') return Math.abs(dx) <= r && Math.abs(dy) <= r;
  // triangle with apex (x, y − r) and base y + r from x − r to x + r
  if (dy < -r || dy > r) return false;
  const halfWidth = ((dy + r) / (2 * r)) * r;
  return Math.abs(dx) <= halfWidth;
}

/** `[size, size, 3]` pixels in [0, 1], objects painted in order over white (pixel centres sampled). */
export function drawScenePixels(size: number, objects: SceneObject[]): Float32Array {
  const pixels = new Float32Array(size * size * 3);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let rgb = BACKGROUND_RGB;
      for (const o of objects) if (insideObject(o, (px + 0.5) / size, (py + 0.5) / size)) rgb = paletteRgb(o.colour);
      const at = (py * size + px) * 3;
      for (let c = 0; c < 3; c++) pixels[at + c] = rgb[c]! / 255;
    }
  }
  return pixels;
}

/**
 * RGBA bytes of a `width × width` canvas → `[size, size, 3]` floats in [0, 1] by averaging each
 * `(width/size)²` block (alpha composited over white). `width` must be a multiple of `size`.
 */
export function downsampleRgba(rgba: Uint8ClampedArray | Uint8Array, width: number, size: number): Float32Array {
  if (rgba.length !== width * width * 4) throw new Error(`downsampleRgba: rgba must hold width·width·4 = ${width * width * 4} bytes, got ${rgba.length}`);
  if (width % size !== 0) throw new Error(`downsampleRgba: width ${width} must be a multiple of size ${size}`);
  const block = width / size;
  const out = new Float32Array(size * size * 3);
  for (let by = 0; by < size; by++) {
    for (let bx = 0; bx < size; bx++) {
      const sums = [0, 0, 0];
      for (let y = by * block; y < (by + 1) * block; y++) {
        for (let x = bx * block; x < (bx + 1) * block; x++) {
          const at = (y * width + x) * 4;
          const alpha = rgba[at + 3]! / 255;
          for (let c = 0; c < 3; c++) sums[c]! += (rgba[at + c]! * alpha + 255 * (1 - alpha)) / 255;
        }
      }
      const at = (by * size + bx) * 3;
      for (let c = 0; c < 3; c++) out[at + c] = sums[c]! / (block * block);
    }
  }
  return out;
}

/** The page's "example scene" (also used by the tests): a red circle, a blue square, a green triangle. */
export const EXAMPLE_SCENE: SceneObject[] = [
  { shape: 'circle', colour: 'red', x: 0.3, y: 0.32, size: 0.36 },
  { shape: 'square', colour: 'blue', x: 0.7, y: 0.68, size: 0.34 },
  { shape: 'triangle', colour: 'green', x: 0.72, y: 0.3, size: 0.32 },
];

/**
 * Paints `objects` into RGBA bytes `[width, width, 4]` (pixel centres sampled, no anti-aliasing,
 * so the page's canvas and Node produce the same bytes). `base` (same size) is painted over;
 * default white.
 */
export function renderSceneRgba(width: number, objects: SceneObject[], base?: ArrayLike<number>): Uint8ClampedArray<ArrayBuffer> {
  if (base && base.length !== width * width * 4) throw new Error(`renderSceneRgba: base must hold ${width * width * 4} bytes, got ${base.length}`);
  const rgba = new Uint8ClampedArray(width * width * 4);
  if (base) rgba.set(base);
  else rgba.fill(255);
  for (const o of objects) {
    const rgb = paletteRgb(o.colour);
    const r = o.size / 2;
    const x0 = Math.max(0, Math.floor((o.x - r) * width) - 1);
    const x1 = Math.min(width, Math.ceil((o.x + r) * width) + 1);
    const y0 = Math.max(0, Math.floor((o.y - r) * width) - 1);
    const y1 = Math.min(width, Math.ceil((o.y + r) * width) + 1);
    for (let py = y0; py < y1; py++) {
      for (let px = x0; px < x1; px++) {
        if (!insideObject(o, (px + 0.5) / width, (py + 0.5) / width)) continue;
        const at = (py * width + px) * 4;
        rgba[at] = rgb[0];
        rgba[at + 1] = rgb[1];
        rgba[at + 2] = rgb[2];
        rgba[at + 3] = 255;
      }
    }
  }
  return rgba;
}
