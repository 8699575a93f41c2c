/**
 * Procedural scenes: a few coloured shapes drawn into a small RGB image (channels-last,
 * float32 in [0, 1]). Everything is seeded, so a seed always draws the same data set.
 */
export const COLOURS = ['red', 'green', 'blue', 'yellow'] as const;
export const SHAPES = ['square', 'circle', 'triangle', 'cross'] as const;
export const POSITIONS = ['left', 'right', 'top', 'bottom'] as const;
export type Colour = (typeof COLOURS)[number];
export type Shape = (typeof SHAPES)[number];
export type Position = (typeof POSITIONS)[number];

// 8-bit values (k/255), so a scene survives the PNG round trip of the MMMB file exactly.
const byte = (v: number) => Math.round(v * 255) / 255;
const RGB: Record<Colour, [number, number, number]> = {
  red: [byte(0.9), byte(0.1), byte(0.1)],
  green: [byte(0.1), byte(0.8), byte(0.2)],
  blue: [byte(0.15), byte(0.25), byte(0.95)],
  yellow: [byte(0.95), byte(0.9), byte(0.1)],
};
const BACKGROUND = byte(0.12);

export interface SceneObject {
  shape: Shape;
  colour: Colour;
  /** Centre in pixels. */
  x: number;
  y: number;
  /** Half size in pixels. */
  radius: number;
}

export interface Scene {
  size: number;
  objects: SceneObject[];
  /** `[size, size, 3]` row-major, channels last. */
  pixels: Float32Array;
}

/** Is pixel (px, py) inside the object? */
function covers(o: SceneObject, px: number, py: number): boolean {
  const dx = px + 0.5 - o.x;
  const dy = py + 0.5 - o.y;
  const r = o.radius;
  switch (o.shape) {
    case 'square':
      return Math.abs(dx) <= r && Math.abs(dy) <= r;
    case 'circle':
      return dx * dx + dy * dy <= r * r;
    case 'triangle': // apex up: width grows linearly from top to bottom
      return dy >= -r && dy <= r && Math.abs(dx) <= ((dy + r) / 2) * 1.0 + 0.25;
    case 'cross':
      return (Math.abs(dx) <= r && Math.abs(dy) <= r / 3) || (Math.abs(dy) <= r && Math.abs(dx) <= r / 3);
  }
}

/** Draw objects on a dark grey background. */
export function renderScene(size: number, objects: SceneObject[]): Scene {
  const pixels = new Float32Array(size * size * 3).fill(BACKGROUND);
  for (const o of objects) {
    const [r, g, b] = RGB[o.colour];
    for (let py = 0; py < size; py++) {
      for (let px = 0; px < size; px++) {
        if (!covers(o, px, py)) continue;
        const i = (py * size + px) * 3;
        pixels[i] = r;
        pixels[i + 1] = g;
        pixels[i + 2] = b;
      }
    }
  }
  return { size, objects, pixels };
}

/** Centre of a position region. */
export function positionCentre(position: Position, size: number): [number, number] {
  const q = size / 4;
  switch (position) {
    case 'left':
      return [q, size / 2];
    case 'right':
      return [size - q, size / 2];
    case 'top':
      return [size / 2, q];
    case 'bottom':
      return [size / 2, size - q];
  }
}

/** `count` objects of one shape and colour in distinct quadrants (count 1 sits at `position`). */
export function drawScene(
  rng: () => number,
  size: number,
  spec: { shape: Shape; colour: Colour; count: number; position: Position },
): Scene {
  const radius = Math.max(1.5, size / 8);
  if (spec.count === 1) {
    const [x, y] = positionCentre(spec.position, size);
    return renderScene(size, [{ shape: spec.shape, colour: spec.colour, x, y, radius }]);
  }
  const quadrants: Array<[number, number]> = [
    [size / 4, size / 4],
    [(3 * size) / 4, size / 4],
    [size / 4, (3 * size) / 4],
    [(3 * size) / 4, (3 * size) / 4],
  ];
  const order = shuffle(rng, [0, 1, 2, 3]).slice(0, spec.count);
  return renderScene(
    size,
    order.map((k) => ({ shape: spec.shape, colour: spec.colour, x: quadrants[k][0], y: quadrants[k][1], radius })),
  );
}

/** Fisher–Yates with the given rng (returns a new array). */
export function shuffle<T>(rng: () => number, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Uniform pick. */
export function pick<T>(rng: () => number, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)];
}
