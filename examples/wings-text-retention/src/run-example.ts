/**
 * Orchestrates the Wings experiment: text pretraining per seed, then every stage-2 run of that seed
 * (llava and wings at each LLM learning-rate ratio, the released optimizer groups and the router
 * ablation at the primary ratio) on worker threads or inline, one progress bar whose lines say which
 * run, seed and stage they belong to, then the statistics (paired bootstrap over seeds and questions,
 * verdicts) and the outputs, in a directory of its own per invocation:
 * `<out>/runs/<time>-<budget>/{results.md, results.json, metrics.jsonl, dose-response-text.svg,
 * dose-response-image.svg, accuracy.svg, router-blend-image.svg, router-blend-text.svg}`; the first
 * seed's Wings model at the primary ratio goes to `<out>/checkpoint/{host,wings-adapter}` (the latest).
 */
import { rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { ProgressBar, toJsonLine } from '@mllm/train';
import {
  bootstrapInterval,
  createRunDirectory,
  doseResponseSpec,
  fewSeedsWarning,
  formatInterval,
  groupedBarSpec,
  heatmapSpec,
  markdownTable,
  pairedBootstrap,
  renderSvg,
  runOnWorkerPool,
  verdictOf,
  type ExampleRunOptions,
  type Interval,
  type Verdict,
} from '@mllm-example/common';
import { DEFAULT_CONFIG, heldOutImagesFor, heldOutTextFor, runLabel, stage2Runs, type ExampleConfig, type RecipeName, type RouterBlend, type StepReport } from './recipe.js';
import { pretrainedPath, runTask, taskLabel, type Outcome, type Task, type TaskContext } from './tasks.js';

/** The two budgets; both print the same tables (the docs report `full`). Only the number of seeds differs. */
export const BUDGETS = {
  /** ≤ 5 min on 2 quiet cores (`pnpm example:wings`). */
  default: { seeds: [1, 2] },
  /** ≤ 35 min on one core (`--workers 1`): 1599 s measured on a shared machine (wasm; about 165 s per seed when quiet). */
  full: { seeds: [1, 2, 3, 4, 5, 6] },
} as const satisfies Record<string, { seeds: number[] }>;
export type BudgetName = keyof typeof BUDGETS;

/**
 * Pre-registered (fixed and committed before any full run, see docs/examples/wings-text-retention.md).
 * Primary metric: held-out text-only accuracy, Wings with the LLM tuned − LLaVA-style with the same
 * LLM learning rate, at the released ratio (LLM lr = 0.2 × projector lr). A text gain below
 * SMALLEST_EFFECT does not count as reproducing the claim; image accuracy counts as "not worse" when
 * the paired difference's CI lies above −NON_INFERIORITY_MARGIN.
 */
export const SMALLEST_EFFECT = 0.03;
export const NON_INFERIORITY_MARGIN = 0.03;
export const BOOTSTRAP = { resamples: 2000, seed: 0 };

export interface RunOptions extends ExampleRunOptions<ExampleConfig> {
  /** Base output directory: the run's own directory is created under `<outDir>/runs/`. */
  outDir: string;
  /** Name of the budget (labels the run directory and results). */
  budget?: string;
}

type Metric = 'text' | 'image';
type Kind = 'higher' | 'not worse' | 'lower';

/** One pre-registered comparison with its paired CI and verdict. */
export interface Comparison {
  claim: string;
  /** primary, secondary, ablation, dose–response, or premise (reported, not a claim). */
  role: 'primary' | 'secondary' | 'ablation' | 'dose-response' | 'premise';
  metric: Metric;
  kind: Kind;
  method: string;
  control: string;
  method_ci: Interval;
  control_ci: Interval;
  difference: Interval;
  verdict: Verdict;
}

export interface RunResult {
  runDir: string;
  outcomes: Outcome[];
  comparisons: Comparison[];
  table: string;
  files: string[];
  seconds: number;
}

export async function runExample(options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const config: ExampleConfig = { ...DEFAULT_CONFIG, ...options.config };
  if (!options.seeds.length) throw new Error('runExample: seeds must be a non-empty list');
  const budget = options.budget ?? 'custom';
  const runDir = await createRunDirectory(options.outDir, budget);
  const runs = stage2Runs(config);
  const first = options.seeds[0];

  const perSeed = config.pretrainSteps + runs.length * (config.stage1Steps + config.stage2Steps);
  const bar = new ProgressBar(options.seeds.length * perSeed, { stream: options.stream, label: `wings-text-retention ${budget}`, logEvery: 25 });
  const metrics: string[] = [];
  let done = 0;
  const onStep = (task: Task, report: StepReport) => {
    done++;
    metrics.push(toJsonLine({ task: taskLabel(task), seed: task.seed, recipe: task.kind === 'finetune' ? task.run.recipe : 'pretrain', ratio: task.kind === 'finetune' ? task.run.ratio : null, ...report }));
    bar.update({ step: done, loss: report.loss, lr: report.lr, run: `seed ${task.seed} ${report.stage}` }); // parallel runs share the bar: each line says whose it is
  };

  const context: Omit<TaskContext, 'onStep'> = { backend: options.backend, config, scratchDir: runDir };
  const pretrain = options.seeds.map((seed): Task => ({ kind: 'pretrain', seed }));
  const finetuneFor = (seed: number): Task[] =>
    runs.map((run) => {
      const primaryWings = run.recipe === 'wings' && run.ratio === config.primaryRatio && seed === first;
      return { kind: 'finetune', seed, run, checkpointDir: primaryWings ? `${options.outDir}/checkpoint` : null, routerExample: primaryWings };
    });
  const workers = Math.max(0, Math.min(options.workers ?? Math.min(2, cpus().length), options.seeds.length * runs.length));
  const outcomes = workers === 0
    ? await runInline(pretrain, finetuneFor, { ...context, onStep })
    : (
        await runOnWorkerPool<Task, StepReport, Outcome>({
          entry: new URL('./worker-entry.mjs', import.meta.url),
          workerData: context,
          count: workers,
          tasks: pretrain,
          followUps: (task) => (task.kind === 'pretrain' ? finetuneFor(task.seed) : []),
          onProgress: onStep,
          label: taskLabel,
        })
      ).map(({ result }) => result);
  bar.finish();
  for (const seed of options.seeds) await rm(pretrainedPath(runDir, seed), { force: true });

  const order = (o: Outcome) => (o.recipe === 'pretrained' ? -1 : runs.findIndex((r) => r.recipe === o.recipe && r.ratio === o.ratio));
  outcomes.sort((a, b) => a.seed - b.seed || order(a) - order(b));
  const seconds = (performance.now() - started) / 1000;
  const analysis = analyse(outcomes, config, options.seeds);
  const files = await writeResults(runDir, analysis, metrics, {
    config, budget, seeds: options.seeds, backend: `${options.backend} (this thread: ${tf.getBackend()})`, seconds, outcomes,
  });
  return { runDir, outcomes, comparisons: analysis.comparisons, table: analysis.table, files, seconds };
}

async function runInline(pretrain: Task[], finetuneFor: (seed: number) => Task[], ctx: TaskContext): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  for (const task of pretrain) {
    outcomes.push(await runTask(task, ctx));
    for (const t of finetuneFor(task.seed)) outcomes.push(await runTask(t, ctx));
  }
  return outcomes;
}

/** What a row of the tables names: a recipe at a ratio, or the pretrained model. */
interface Cell {
  recipe: 'pretrained' | RecipeName;
  ratio: number | null;
}
const key = (c: Cell) => (c.recipe === 'pretrained' ? 'pretrained' : runLabel({ recipe: c.recipe, ratio: c.ratio! }));
const ratioText = (r: number) => (r === 0 ? 'LLM frozen' : `LLM lr ${r} × P`);

function titleOf(c: Cell, config: ExampleConfig): string {
  const r = c.ratio ?? 0;
  switch (c.recipe) {
    case 'pretrained': return 'after text pretraining (before multimodal)';
    case 'llava': return r === 0 ? 'control: projector only (LLM frozen, no Wings)' : `LLaVA-style (LLM + projector), ${ratioText(r)}${r === config.primaryRatio ? ' (released ratio)' : ''}`;
    case 'wings': return r === 0 ? 'Wings, LLM frozen (learners + router + projector)' : `Wings + LLM tuned, ${ratioText(r)}${r === config.primaryRatio ? ' (released ratio)' : ''}`;
    case 'wings-released': return `Wings + LLM tuned, released lr groups (learners + router at ${r} × P too)`;
    case 'wings-router-frozen': return `ablation: Wings + LLM tuned, router frozen at init, ${ratioText(r)}`;
  }
}

export interface Analysis {
  comparisons: Comparison[];
  table: string;
  markdown: string;
  dose: { text: DosePoint[]; image: DosePoint[] };
  bars: Array<{ group: string; series: string; value: number; low: number; high: number }>;
}
type DosePoint = { x: number; value: number; low: number; high: number; series: string };

export function analyse(outcomes: Outcome[], config: ExampleConfig, seeds: number[]): Analysis {
  const runs = stage2Runs(config);
  const p = config.primaryRatio;
  /** `[seed][question]` scores of a cell. */
  const scores = (c: Cell, metric: Metric): number[][] =>
    seeds.map((seed) => {
      const o = outcomes.find((x) => x.seed === seed && x.recipe === c.recipe && x.ratio === c.ratio);
      if (!o) throw new Error(`no outcome for ${key(c)} seed ${seed}`);
      return o[metric];
    });
  const cellCI = (c: Cell, metric: Metric): Interval => {
    const s = scores(c, metric);
    return bootstrapInterval(s, BOOTSTRAP);
  };
  const compare = (claim: string, role: Comparison['role'], metric: Metric, kind: Kind, method: Cell, control: Cell): Comparison => {
    const r = pairedBootstrap(scores(method, metric), scores(control, metric), BOOTSTRAP);
    const d = r.difference;
    const verdict = kind === 'not worse'
      ? verdictOf({ estimate: d.estimate + NON_INFERIORITY_MARGIN, low: d.low + NON_INFERIORITY_MARGIN, high: d.high + NON_INFERIORITY_MARGIN }, 'higher')
      : kind === 'lower'
        ? verdictOf(d, 'lower')
        : verdictOf(d, 'higher', SMALLEST_EFFECT);
    return { claim, role, metric, kind, method: key(method), control: key(control), method_ci: r.a, control_ci: r.b, difference: d, verdict };
  };
  const llava = (ratio: number): Cell => ({ recipe: 'llava', ratio });
  const wings = (ratio: number): Cell => ({ recipe: 'wings', ratio });
  const pretrained: Cell = { recipe: 'pretrained', ratio: null };
  const doseRatios = config.llmLrRatios.filter((r) => r > 0 && r !== p);
  const full = config.llmLrRatios.includes(1); // the LLM at the projector's lr (the comparisons against it need that run)
  const comparisons: Comparison[] = [
    compare(`Wings + LLM tuned keeps more text skill than LLaVA-style at the same LLM lr (${p} × P)`, 'primary', 'text', 'higher', wings(p), llava(p)),
    compare(`… at image accuracy not worse (margin ${(100 * NON_INFERIORITY_MARGIN).toFixed(0)} points)`, 'secondary', 'image', 'not worse', wings(p), llava(p)),
    ...(full ? [
      compare('Wings with the LLM frozen keeps more text skill than LLaVA-style with the LLM at P (the old comparison)', 'secondary', 'text', 'higher', wings(0), llava(1)),
      compare('… at image accuracy not worse', 'secondary', 'image', 'not worse', wings(0), llava(1)),
    ] : []),
    compare('with the LLM frozen, the learners learn the image task better than the projector alone', 'secondary', 'image', 'higher', wings(0), llava(0)),
    compare(`the released lr groups (learners at ${p} × P) also keep more text skill than LLaVA-style`, 'secondary', 'text', 'higher', { recipe: 'wings-released', ratio: p }, llava(p)),
    compare('the retention needs the trained router (router frozen at init as control)', 'ablation', 'text', 'higher', wings(p), { recipe: 'wings-router-frozen', ratio: p }),
    ...doseRatios.map((r) => compare(`Wings + LLM tuned keeps more text skill than LLaVA-style at LLM lr ${r} × P`, 'dose-response', 'text', 'higher', wings(r), llava(r))),
    ...(full ? [compare('premise: LLaVA-style fine-tuning (LLM at P) on image-only data lowers the text skill', 'premise', 'text', 'lower', llava(1), pretrained)] : []),
    compare(`premise: … and so it does at the released ratio (${p} × P)`, 'premise', 'text', 'lower', llava(p), pretrained),
  ];

  const n = seeds.length;
  const T = heldOutTextFor(config).length;
  const I = heldOutImagesFor(config).length;
  const mainCells: Cell[] = [pretrained, ...[1, p].filter((r, i, a) => config.llmLrRatios.includes(r) && a.indexOf(r) === i).map(llava), llava(0), wings(0), wings(p),
    { recipe: 'wings-released', ratio: p }, { recipe: 'wings-router-frozen', ratio: p }];
  const mainRows = mainCells.map((c) => [titleOf(c, config), formatInterval(cellCI(c, 'text')), formatInterval(cellCI(c, 'image'))]);
  const main = `Held-out accuracy (%), with 95 % CI (paired bootstrap over ${n} seed(s) and the questions; ${T} text-only and ${I} image questions per seed; chance 25.0; P = projector lr)\n\n` +
    markdownTable(['model', 'text-only (find the letter)', 'image QA (colour)'], mainRows);
  const verdictRule = `verdict: "higher" claims: CI above 0 → reproduced; below 0 or below +${(100 * SMALLEST_EFFECT).toFixed(0)} → not reproduced; ` +
    `"not worse": CI above −${(100 * NON_INFERIORITY_MARGIN).toFixed(0)} → reproduced, below → not reproduced; premise ("lower"): CI below 0 → reproduced (the premise holds); else inconclusive at this budget`;
  const claimsTable = `Claims (Δ = method − control in points, paired, with 95 % CI; ${verdictRule})${fewSeedsWarning(n, BUDGETS.full.seeds.length)}\n\n` +
    markdownTable(['role', 'claim', 'metric', 'method', 'control', 'Δ', 'verdict'],
      comparisons.map((c) => [c.role, c.claim, c.metric, c.method, c.control, formatInterval(c.difference, { signed: true }), c.verdict]));

  const doseRows = config.llmLrRatios.map((r) => {
    const t = pairedBootstrap(scores(wings(r), 'text'), scores(llava(r), 'text'), BOOTSTRAP);
    const i = pairedBootstrap(scores(wings(r), 'image'), scores(llava(r), 'image'), BOOTSTRAP);
    return { r, t, i };
  });
  const doseTable = 'Dose–response: held-out accuracy against the LLM\'s stage-2 learning rate (× P; 0 = LLM frozen, where LLaVA-style is the projector-only control), 95 % CI\n\n' +
    markdownTable(['LLM lr ÷ P', 'LLaVA text', 'Wings text', 'Δ text', 'LLaVA image', 'Wings image', 'Δ image'],
      doseRows.map(({ r, t, i }) => [String(r), formatInterval(t.b), formatInterval(t.a), formatInterval(t.difference, { signed: true }), formatInterval(i.b), formatInterval(i.a), formatInterval(i.difference, { signed: true })]));
  const doseOf = (metric: 'text' | 'image'): DosePoint[] => doseRows.flatMap(({ r, t, i }) => {
    const x = metric === 'text' ? t : i;
    return [
      { x: r, value: x.b.estimate, low: x.b.low, high: x.b.high, series: 'LLaVA-style (LLM + projector)' },
      { x: r, value: x.a.estimate, low: x.a.low, high: x.a.high, series: 'Wings + LLM (learners + router + projector)' },
      { x: r, value: x.difference.estimate, low: x.difference.low, high: x.difference.high, series: 'Δ Wings − LLaVA' },
    ];
  });

  // Router blend: mean w_visual per layer over the held-out prompts, averaged over seeds.
  const routerRows = runs.filter((r) => r.recipe !== 'llava' && (r.ratio === 0 || r.ratio === p)).flatMap((run) => {
    const found = outcomes.filter((o) => o.recipe === run.recipe && o.ratio === run.ratio && o.router);
    if (!found.length) return [];
    const avg = (pick: (o: Outcome) => number[], i: number) => found.reduce((s, o) => s + pick(o)[i], 0) / found.length;
    return found[0].router!.layers.map((layer, i) => [
      runLabel(run), `layer ${layer}`,
      avg((o) => o.router!.imageTokens, i), avg((o) => o.router!.imagePromptText, i), avg((o) => o.router!.textOnly, i),
    ]);
  });
  const routerTable = routerRows.length
    ? `Mean router weight w_visual (w_text = 1 − w_visual) over ${config.routerPrompts} held-out image and ${config.routerPrompts} text-only prompts, averaged over ${n} seed(s)\n\n` +
      markdownTable(['run', 'layer', 'image prompt: image tokens', 'image prompt: text tokens', 'text-only prompt'], routerRows)
    : '';
  const perSeed = 'Per seed (text / image, %)\n\n' + markdownTable(['run', ...seeds.map((s) => `seed ${s}`)],
    [pretrained, ...runs].map((c) => [key(c), ...seeds.map((seed) => {
      const o = outcomes.find((x) => x.seed === seed && x.recipe === c.recipe && x.ratio === c.ratio)!;
      return `${(100 * o.textAccuracy).toFixed(1)} / ${(100 * o.imageAccuracy).toFixed(1)}`;
    })]));
  const bars = mainCells.flatMap((c) => (['text', 'image'] as const).map((metric) => {
    const ci = cellCI(c, metric);
    return { group: metric === 'text' ? 'text-only (held out)' : 'image QA (held out)', series: key(c), value: ci.estimate, low: ci.low, high: ci.high };
  }));
  const table = [main, claimsTable, doseTable].join('\n\n');
  const markdown = [main, claimsTable, doseTable, routerTable, perSeed].filter(Boolean).join('\n\n');
  return { comparisons, table, markdown, dose: { text: doseOf('text'), image: doseOf('image') }, bars };
}

function blendSpec(blend: RouterBlend, title: string) {
  const rows = blend.layers.flatMap((layer, i) =>
    blend.tokens.map((token, t) => ({ row: `layer ${layer}`, column: `${String(t).padStart(2, '0')} ${token}`, value: blend.visual[i][t] })),
  );
  return heatmapSpec({ title, rows, rowTitle: 'decoder layer', columnTitle: 'token', valueTitle: 'w_visual (w_text = 1 − w_visual)' });
}

async function writeResults(
  runDir: string,
  analysis: Analysis,
  metrics: string[],
  record: { config: ExampleConfig; budget: string; seeds: number[]; backend: string; seconds: number; outcomes: Outcome[] },
): Promise<string[]> {
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await writeFile(`${runDir}/${name}`, text);
    files.push(`${runDir}/${name}`);
  };
  await write('metrics.jsonl', metrics.join(''));
  await write('results.json', `${JSON.stringify({
    ...record, smallestEffect: SMALLEST_EFFECT, nonInferiorityMargin: NON_INFERIORITY_MARGIN, bootstrap: BOOTSTRAP, comparisons: analysis.comparisons,
  }, null, 2)}\n`);
  const c = record.config;
  for (const metric of ['text', 'image'] as const) {
    await write(`dose-response-${metric}.svg`, await renderSvg(doseResponseSpec({
      title: `Held-out ${metric === 'text' ? 'text-only' : 'image'} accuracy vs the LLM's stage-2 learning rate (95 % CI)`, rows: analysis.dose[metric],
      xTitle: 'LLM learning rate ÷ projector learning rate', yTitle: 'accuracy / Δ', zeroLine: true,
    })));
  }
  await write('accuracy.svg', await renderSvg(groupedBarSpec({ title: 'Held-out accuracy (95 % CI over seeds and questions)', rows: analysis.bars, yTitle: 'accuracy', yDomain: [0, 1] })));
  const examples = record.outcomes.find((o) => o.routerExamples)?.routerExamples ?? [];
  const [imageBlend, textBlend] = examples;
  const seed = record.seeds[0];
  if (imageBlend) await write('router-blend-image.svg', await renderSvg(blendSpec(imageBlend, `Wings router blend per token, image prompt (wings@${c.primaryRatio}, seed ${seed})`)));
  if (textBlend) await write('router-blend-text.svg', await renderSvg(blendSpec(textBlend, `Wings router blend per token, text-only prompt "${textBlend.prompt}" (wings@${c.primaryRatio}, seed ${seed})`)));
  const timing = 'Seconds per task: ' + record.outcomes.map((o) => `seed ${o.seed} ${key(o)} ${o.seconds.toFixed(0)}`).join(', ') + `; whole run ${record.seconds.toFixed(0)} s.`;
  await write(
    'results.md',
    `# wings-text-retention results (${record.budget} budget)\n\nBackend: ${record.backend} (tasks ran on ${[...new Set(record.outcomes.map((o) => o.backend))].join(', ')}); seeds: ${record.seeds.join(', ')}; ` +
      `text pretraining ${c.pretrainSteps} steps (lr ${c.pretrainLr}); multimodal stage 1 ${c.stage1Steps} steps (lr ${c.stage1Lr}) + stage 2 ${c.stage2Steps} steps (P = ${c.stage2Lr}) per run; batch ${c.batchSize}; ` +
      `LLM lr ratios ${c.llmLrRatios.join(', ')} (primary ${c.primaryRatio}).\n\n${analysis.markdown}\n\n${timing}\n\n` +
      'Plots: dose-response-text.svg, dose-response-image.svg, accuracy.svg, router-blend-image.svg, router-blend-text.svg. ' +
      `Checkpoint (wings@${c.primaryRatio}, seed ${seed}): <out>/checkpoint/host (saveHostModel), <out>/checkpoint/wings-adapter (core's saveAdapterFiles).\n`,
  );
  return files;
}
