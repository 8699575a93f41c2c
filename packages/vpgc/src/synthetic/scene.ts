/**
 * Procedural scenes for synthetic discriminative training: a square canvas split into a `grid × grid`
 * array of regions; each occupied region holds `count` identical shapes of one colour. The scene
 * description is exact, so the "segmentation" the paper gets from SAM is known by construction.
 */

export const SHAPES = ['square', 'circle', 'triangle'] as const;
export type ShapeKind = (typeof SHAPES)[number];

/** Named colours (RGB in [0, 1]). */
export const COLOURS = {
  red: [0.9, 0.1, 0.1],
  green: [0.1, 0.75, 0.2],
  blue: [0.15, 0.3, 0.95],
  yellow: [0.95, 0.9, 0.1],
  purple: [0.6, 0.2, 0.8],
  orange: [1.0, 0.55, 0.05],
} as const satisfies Record<string, readonly [number, number, number]>;
export type ColourName = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as ColourName[];

/** Largest number of shapes one region holds. */
export const MAX_COUNT = 4;

/** A group of identical shapes filling one region. */
export interface SceneObject {
  /** Region index, row-major over the grid. */
  region: number;
  shape: ShapeKind;
  colour: ColourName;
  /** 1 … MAX_COUNT */
  count: number;
}

export interface Scene {
  /** Canvas side in pixels. */
  size: number;
  /** Regions per side. */
  grid: number;
  /** Background grey level in [0, 1]. */
  background: number;
  /** At most one object per region. */
  objects: SceneObject[];
}

export interface RandomSceneOptions {
  /** Canvas side (default 32). */
  size?: number;
  /** Regions per side (default 3). */
  grid?: number;
  /** Object groups (default 2 … grid²−1, so a free region exists for position edits). */
  minObjects?: number;
  maxObjects?: number;
}

/** Integer in [0, n) from a [0, 1) generator. */
export function randomInt(rng: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(rng() * n));
}

/** Pick one element. */
export function pick<T>(rng: () => number, items: readonly T[]): T {
  return items[randomInt(rng, items.length)];
}

/** `count` distinct indices of [0, n) (partial Fisher–Yates). */
export function sampleWithoutReplacement(rng: () => number, n: number, count: number): number[] {
  const pool = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + randomInt(rng, n - i);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, count);
}

/** A random scene. */
export function randomScene(rng: () => number, options: RandomSceneOptions = {}): Scene {
  const size = options.size ?? 32;
  const grid = options.grid ?? 3;
  if (!Number.isInteger(grid) || grid < 2) throw new Error(`randomScene: grid must be an integer ≥ 2, got ${grid}`);
  if (!Number.isInteger(size) || size < grid * 6) throw new Error(`randomScene: size must be an integer ≥ 6·grid = ${grid * 6}, got ${size}`);
  const regions = grid * grid;
  const minObjects = options.minObjects ?? 2;
  const maxObjects = options.maxObjects ?? regions - 1;
  if (!(minObjects >= 1 && maxObjects >= minObjects && maxObjects <= regions)) {
    throw new Error(`randomScene: need 1 ≤ minObjects ≤ maxObjects ≤ ${regions}, got ${minObjects}, ${maxObjects}`);
  }
  const numObjects = minObjects + randomInt(rng, maxObjects - minObjects + 1);
  const chosen = sampleWithoutReplacement(rng, regions, numObjects).sort((a, b) => a - b);
  return {
    size,
    grid,
    background: 0.05 + 0.15 * rng(),
    objects: chosen.map((region) => ({
      region,
      shape: pick(rng, SHAPES),
      colour: pick(rng, COLOUR_NAMES),
      count: 1 + randomInt(rng, MAX_COUNT),
    })),
  };
}

/** Deep copy. */
export function cloneScene(scene: Scene): Scene {
  return { ...scene, objects: scene.objects.map((o) => ({ ...o })) };
}

/** Words for region `region` of a `grid × grid` layout ("top left", "center", "bottom right", …). */
export function regionName(region: number, grid: number): string {
  const row = Math.floor(region / grid);
  const column = region % grid;
  const vertical = grid === 2 ? ['top', 'bottom'][row] : row === 0 ? 'top' : row === grid - 1 ? 'bottom' : 'middle';
  const horizontal = grid === 2 ? ['left', 'right'][column] : column === 0 ? 'left' : column === grid - 1 ? 'right' : 'center';
  if (vertical === 'middle' && horizontal === 'center') return 'center';
  if (grid > 3) return `row ${row + 1}, column ${column + 1}`;
  return `${vertical} ${horizontal}`;
}
