/**
 * One edit of a scene object (the paper's modify / swap / delete / add become: colour, shape, count,
 * position) and the sentence that names it.
 */
import {
  COLOUR_NAMES, MAX_COUNT, SHAPES, cloneScene, pick, randomInt, regionName,
  type ColourName, type Scene, type SceneObject, type ShapeKind,
} from './scene.js';

export const EDIT_KINDS = ['colour', 'shape', 'count', 'position'] as const;
export type EditKind = (typeof EDIT_KINDS)[number];

/** What was changed. */
export interface SceneEdit {
  kind: EditKind;
  /** Region of the edited object before the edit. */
  region: number;
  /** The object before and after. */
  before: SceneObject;
  after: SceneObject;
}

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five'];

function plural(shape: ShapeKind, count: number): string {
  return count === 1 ? shape : `${shape}s`;
}

/** "the red circle" / "the three blue squares". */
export function objectPhrase(object: Pick<SceneObject, 'shape' | 'colour' | 'count'>): string {
  return object.count === 1
    ? `the ${object.colour} ${object.shape}`
    : `the ${NUMBER_WORDS[object.count]} ${object.colour} ${plural(object.shape, object.count)}`;
}

/** A sentence naming the change, e.g. "The red circle in the top left turned blue." */
export function describeEdit(edit: SceneEdit, grid: number): string {
  const { before, after } = edit;
  const where = regionName(before.region, grid);
  const subject = objectPhrase(before);
  const Subject = subject[0].toUpperCase() + subject.slice(1);
  switch (edit.kind) {
    case 'colour':
      return `${Subject} in the ${where} turned ${after.colour}.`;
    case 'shape':
      return before.count === 1
        ? `${Subject} in the ${where} became a ${after.shape}.`
        : `${Subject} in the ${where} became ${plural(after.shape, after.count)}.`;
    case 'count':
      return `The number of ${before.colour} ${plural(before.shape, 2)} in the ${where} changed from ${NUMBER_WORDS[before.count]} to ${NUMBER_WORDS[after.count]}.`;
    case 'position':
      return `${Subject} moved from the ${where} to the ${regionName(after.region, grid)}.`;
  }
}

function otherThan<T>(rng: () => number, items: readonly T[], current: T): T {
  const rest = items.filter((item) => item !== current);
  return pick(rng, rest);
}

/**
 * Apply edit `kind` to the object in `region` (a new scene; the input is not modified). A position edit
 * needs a free region; without one it throws.
 */
export function applyEdit(scene: Scene, region: number, kind: EditKind, rng: () => number): { scene: Scene; edit: SceneEdit } {
  const index = scene.objects.findIndex((o) => o.region === region);
  if (index < 0) throw new Error(`applyEdit: no object in region ${region}`);
  const edited = cloneScene(scene);
  const before = { ...scene.objects[index] };
  const after = edited.objects[index];
  switch (kind) {
    case 'colour':
      after.colour = otherThan<ColourName>(rng, COLOUR_NAMES, before.colour);
      break;
    case 'shape':
      after.shape = otherThan<ShapeKind>(rng, SHAPES, before.shape);
      break;
    case 'count': {
      const counts = Array.from({ length: MAX_COUNT }, (_, i) => i + 1);
      after.count = otherThan(rng, counts, before.count);
      break;
    }
    case 'position': {
      const used = new Set(scene.objects.map((o) => o.region));
      const free = Array.from({ length: scene.grid * scene.grid }, (_, i) => i).filter((r) => !used.has(r));
      if (free.length === 0) throw new Error('applyEdit: a position edit needs a free region');
      after.region = free[randomInt(rng, free.length)];
      edited.objects.sort((a, b) => a.region - b.region);
      break;
    }
  }
  return { scene: edited, edit: { kind, region, before, after: { ...after } } };
}
