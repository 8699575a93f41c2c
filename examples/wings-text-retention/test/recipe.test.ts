/**
 * The recipes train what they say, at the learning rates they say. One stage-2 step that moves the
 * weights (the first step of the 2-step schedule has warmup factor 0) changes every parameter by
 * lr_group · m̂/(√v̂ + ε), and max over a large group of |m̂/√v̂| is within 0.2 % of 1 (two Adam steps:
 * at most √(0.4737²/0.49975 + 0.5263²/0.50025) ≈ 1.0013, and 1 where both gradients agree). So the
 * ratio of two groups' largest weight changes is the ratio of their learning rates, and a frozen
 * group does not move at all. The weights before stage 2 come from the same run with 0 stage-2 steps
 * (the same seeds, so the same stage 1 and the same init of the stage-2 learners).
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { disposeStateDict, setSeed, stateDict, type StateDict } from '@mllm/core';
import { exampleTokenizer } from '../src/data.js';
import { DEFAULT_CONFIG, buildHost, runFinetune, stage2Runs, type ExampleConfig, type RunSpec } from '../src/recipe.js';

const backend = process.env.MLLM_TEST_BACKEND ?? 'cpu';
const tokenizer = exampleTokenizer();
// Two stage-1 steps make the visual learner's output non-zero (both learners are zero at init, so
// the router has no gradient until one of them is not).
const base: ExampleConfig = { ...DEFAULT_CONFIG, batchSize: 2, stage1Steps: 2 };

const GROUPS = {
  vision: (n: string) => n.startsWith('model.vision_tower.'),
  projector: (n: string) => n.startsWith('model.mm_projector.'),
  learners: (n: string) => n.includes('.attn_pool.') || n.includes('.attn_t_pool.'),
  router: (n: string) => n.includes('.reweight_module.'),
  llm: (n: string) => !/(vision_tower|mm_projector|attn_pool|attn_t_pool|reweight_module)/.test(n),
} as const;
type Group = keyof typeof GROUPS;

/** The weights after `run` with `steps` stage-2 steps (learners included while attached). */
async function weightsAfter(run: RunSpec, steps: number, pretrained: StateDict): Promise<Map<string, Float32Array>> {
  const { model, wings } = await runFinetune(run, 1, pretrained, tokenizer, { ...base, stage2Steps: steps }, () => {});
  try {
    const dict = stateDict(model);
    const values = new Map([...dict].map(([k, v]) => [k, v.dataSync() as Float32Array]));
    disposeStateDict(dict);
    return values;
  } finally {
    model.dispose();
    wings?.module.dispose();
  }
}

/** Largest |Δ| of each group's parameters between two weight maps. */
function largestChange(before: Map<string, Float32Array>, after: Map<string, Float32Array>): Record<Group, number> {
  const out = { vision: 0, projector: 0, learners: 0, router: 0, llm: 0 } as Record<Group, number>;
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [name, a] of after) {
    const b = before.get(name)!;
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    const group = (Object.keys(GROUPS) as Group[]).find((g) => GROUPS[g](name))!;
    out[group] = Math.max(out[group], m);
  }
  return out;
}

describe('wings-text-retention recipes', () => {
  it('stage2Runs: llava and wings at every ratio, the released groups and the router ablation at the primary ratio; bad ratios are named', () => {
    expect(stage2Runs({ ...base, llmLrRatios: [0, 0.2, 1], primaryRatio: 0.2 }).map((r) => `${r.recipe}@${r.ratio}`)).toEqual([
      'llava@0', 'wings@0', 'llava@0.2', 'wings@0.2', 'llava@1', 'wings@1', 'wings-released@0.2', 'wings-router-frozen@0.2',
    ]);
    expect(() => stage2Runs({ ...base, llmLrRatios: [0.2], primaryRatio: 0.2 })).toThrow(/llmLrRatios must include 0/);
    expect(() => stage2Runs({ ...base, llmLrRatios: [0, 0.2], primaryRatio: 0.5 })).toThrow(/primaryRatio must be one of llmLrRatios \(0, 0.2\), got 0.5/);
    expect(() => stage2Runs({ ...base, llmLrRatios: [0, 2], primaryRatio: 2 })).toThrow(/llmLrRatios must lie in \[0, 1\], got 2/);
  });

  it.skipIf(backend === 'webgpu')('each recipe moves exactly its groups, at its learning-rate ratio to the projector (skipped on webgpu: passes there but takes 91 s under SwiftShader)', async () => {
    setSeed(11);
    const host = buildHost(tokenizer, base);
    const pretrained = stateDict(host);
    host.dispose();
    const before = tf.memory().numTensors;
    const r = 0.2;
    const expected: Array<[RunSpec, Partial<Record<Group, number>>]> = [
      [{ recipe: 'llava', ratio: 0 }, { vision: 0, llm: 0 }],
      [{ recipe: 'llava', ratio: r }, { vision: 0, llm: r }],
      [{ recipe: 'wings', ratio: 0 }, { vision: 0, llm: 0, learners: 1 }],
      [{ recipe: 'wings', ratio: r }, { vision: 0, llm: r, learners: 1 }],
      [{ recipe: 'wings-released', ratio: r }, { vision: 0, llm: r, learners: r }],
      [{ recipe: 'wings-router-frozen', ratio: r }, { vision: 0, llm: r, learners: 1, router: 0 }],
    ];
    try {
      for (const [run, ratios] of expected) {
        const change = largestChange(await weightsAfter(run, 0, pretrained), await weightsAfter(run, 2, pretrained));
        const label = `${run.recipe}@${run.ratio}`;
        expect(change.projector, label).toBeGreaterThan(0.5 * base.stage2Lr);
        for (const [group, ratio] of Object.entries(ratios) as Array<[Group, number]>) {
          if (ratio === 0) expect(change[group], `${label} ${group}`).toBe(0);
          else expect(change[group] / change.projector, `${label} ${group}`).toBeCloseTo(ratio, 2);
        }
        if (run.recipe !== 'llava' && run.recipe !== 'wings-router-frozen') expect(change.router, `${label} router`).toBeGreaterThan(0);
        if (run.recipe === 'llava') expect(change.learners + change.router).toBe(0); // no Wings modules at all
      }
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      disposeStateDict(pretrained);
    }
  });
});
