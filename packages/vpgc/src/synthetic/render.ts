/**
 * Rasterise a `Scene` into channels-last float32 RGB pixels in [0, 1] (`[size, size, 3]`, row-major).
 * Shapes of one region are laid out on a small sub-grid inside the region, so counts are visible.
 */
import { COLOURS, type Scene, type SceneObject, type ShapeKind } from './scene.js';

/** Pixel rectangle of region `region`: [x0, y0, x1, y1). */
export function regionBox(region: number, grid: number, size: number): [number, number, number, number] {
  const row = Math.floor(region / grid);
  const column = region % grid;
  const x0 = Math.round((column * size) / grid);
  const y0 = Math.round((row * size) / grid);
  return [x0, y0, Math.round(((column + 1) * size) / grid), Math.round(((row + 1) * size) / grid)];
}

function inside(shape: ShapeKind, dx: number, dy: number, radius: number): boolean {
  switch (shape) {
    case 'square':
      return Math.abs(dx) <= radius && Math.abs(dy) <= radius;
    case 'circle':
      return dx * dx + dy * dy <= radius * radius;
    case 'triangle': {
      // apex up, base at dy = +radius·0.8
      const top = -radius;
      const bottom = radius * 0.8;
      if (dy < top || dy > bottom) return false;
      const halfWidth = ((dy - top) / (bottom - top)) * radius;
      return Math.abs(dx) <= halfWidth;
    }
  }
}

/** Centres and radius of the `count` shapes of an object inside its region box. */
export function shapeLayout(object: SceneObject, grid: number, size: number): { centres: Array<[number, number]>; radius: number } {
  const [x0, y0, x1, y1] = regionBox(object.region, grid, size);
  const per = object.count === 1 ? 1 : 2; // 1 → centre; 2…4 → 2×2 slots
  const cellW = (x1 - x0) / per;
  const cellH = (y1 - y0) / per;
  const slots: Array<[number, number]> = [];
  for (let r = 0; r < per; r++) for (let c = 0; c < per; c++) slots.push([x0 + (c + 0.5) * cellW, y0 + (r + 0.5) * cellH]);
  const order = object.count === 2 ? [0, 3] : [0, 1, 2, 3];
  const centres = object.count === 1 ? [slots[0]] : order.slice(0, object.count).map((i) => slots[i]);
  return { centres, radius: Math.max(1.5, 0.38 * Math.min(cellW, cellH)) };
}

/** `[size, size, 3]` float32 in [0, 1], channels last. */
export function renderScene(scene: Scene): Float32Array {
  const { size, grid } = scene;
  const pixels = new Float32Array(size * size * 3).fill(scene.background);
  for (const object of scene.objects) {
    const colour = COLOURS[object.colour];
    const { centres, radius } = shapeLayout(object, grid, size);
    for (const [cx, cy] of centres) {
      const xs = Math.max(0, Math.floor(cx - radius - 1));
      const xe = Math.min(size - 1, Math.ceil(cx + radius + 1));
      const ys = Math.max(0, Math.floor(cy - radius - 1));
      const ye = Math.min(size - 1, Math.ceil(cy + radius + 1));
      for (let y = ys; y <= ye; y++) {
        for (let x = xs; x <= xe; x++) {
          if (!inside(object.shape, x + 0.5 - cx, y + 0.5 - cy, radius)) continue;
          const p = (y * size + x) * 3;
          pixels[p] = colour[0];
          pixels[p + 1] = colour[1];
          pixels[p + 2] = colour[2];
        }
      }
    }
  }
  return pixels;
}
