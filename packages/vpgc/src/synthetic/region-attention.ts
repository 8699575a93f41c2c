/**
 * From per-patch attention mass to per-region significance (the paper's Φ(o) = mean of the averaged
 * cross-attention map inside the object's mask; here the object's mask is its grid region).
 */
import { regionBox } from './render.js';
import type { Scene } from './scene.js';

/**
 * patchMass `[P·P]` (row-major patch grid over the canvas, e.g. the Q-Former cross-attention mass per
 * ViT patch with the CLS token removed) → mean mass per region `[grid²]`. A patch belongs to the region
 * containing its centre.
 */
export function regionAttention(patchMass: ArrayLike<number>, patchGrid: number, grid: number, size: number): number[] {
  if (patchMass.length !== patchGrid * patchGrid) {
    throw new Error(`regionAttention: patchMass must have patchGrid² = ${patchGrid * patchGrid} entries, got ${patchMass.length}`);
  }
  const sums = new Array<number>(grid * grid).fill(0);
  const counts = new Array<number>(grid * grid).fill(0);
  const patchSize = size / patchGrid;
  for (let py = 0; py < patchGrid; py++) {
    for (let px = 0; px < patchGrid; px++) {
      const cx = (px + 0.5) * patchSize;
      const cy = (py + 0.5) * patchSize;
      for (let region = 0; region < grid * grid; region++) {
        const [x0, y0, x1, y1] = regionBox(region, grid, size);
        if (cx >= x0 && cx < x1 && cy >= y0 && cy < y1) {
          sums[region] += patchMass[py * patchGrid + px];
          counts[region]++;
          break;
        }
      }
    }
  }
  return sums.map((s, region) => {
    if (counts[region] === 0) throw new Error(`regionAttention: region ${region} contains no patch centre (patchGrid ${patchGrid} is too coarse for grid ${grid})`);
    return s / counts[region];
  });
}

/** The occupied region with the least attention (ties → lowest region index). */
export function leastAttendedObject(scene: Scene, perRegion: readonly number[]): number {
  if (scene.objects.length === 0) throw new Error('leastAttendedObject: the scene has no objects');
  let best = scene.objects[0].region;
  for (const object of scene.objects) if (perRegion[object.region] < perRegion[best]) best = object.region;
  return best;
}
