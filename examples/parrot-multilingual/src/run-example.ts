/**
 * Orchestrates the Parrot experiment: the shared pretraining (stages 0 + 1, cached), every stage-2 run
 * (recipe × non-English share × seed) on worker threads or inline, one progress bar whose lines say
 * which run and stage they belong to, then the statistics (paired bootstrap over seeds and questions,
 * verdicts) and the outputs, in a directory of its own per invocation:
 * `<out>/runs/<time>-<budget>/{results.md, results.json, metrics.jsonl, dose-response.svg,
 * accuracy-by-language.svg, router-weights.svg}`; the Parrot checkpoint of the first seed at the primary
 * share goes to `<out>/checkpoint` (the latest; what examples/browser-demo loads).
 */
import { mkdir, writeFile } from 'node:fs/promises';
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
import { LANGUAGES, type Language } from './questions.js';
import { DEFAULT_CONFIG, RECIPES, type ExampleConfig, type QuestionScores, type RecipeName, type StepReport } from './recipe.js';
import { hasPretrained, runTask, scorePretrained, taskLabel, type Outcome, type PretrainOutcome, type Stage2Outcome, type Task, type TaskContext } from './tasks.js';

/** The two budgets; both print the same tables (the docs report `full`). */
export const BUDGETS = {
  /** ≤ 5 min on 2 quiet cores (the README's main job). */
  default: { config: { stage0Steps: 300, stage1Steps: 100, stage2Steps: 60 }, seeds: [1, 2], perLanguage: 40 },
  /** Up to an hour on 2 cores. */
  full: { config: { stage0Steps: 800, stage1Steps: 300, stage2Steps: 200 }, seeds: [1, 2, 3, 4, 5], perLanguage: 200 },
} as const satisfies Record<string, { config: Partial<ExampleConfig>; seeds: number[]; perLanguage: number }>;
export type BudgetName = keyof typeof BUDGETS;

/**
 * Pre-registered (fixed before any full run, see docs/examples/parrot-multilingual.md): the primary
 * metric is exact match on the non-English questions (zh, pt, ar, tr, ru pooled), Parrot − baseline at
 * the primary share; a gain smaller than 2 points does not count as reproducing the claim.
 */
export const SMALLEST_EFFECT = 0.02;
const BOOTSTRAP = { resamples: 2000, seed: 0 };

export interface RunOptions extends ExampleRunOptions<ExampleConfig> {
  /** Base output directory: the run's own directory is created under `<outDir>/runs/`. */
  outDir: string;
  /** Name of the budget (labels the run directory and results). */
  budget?: string;
  /** Seed of the shared pretraining (default 0); `seeds` are those of the stage-2 runs (data order, module init). */
  pretrainSeed?: number;
  /** Held-out questions per language. */
  perLanguage?: number;
}

/** One comparison with its paired CI and verdict. */
export interface Comparison {
  claim: string;
  metric: keyof Omit<QuestionScores, 'samples'>;
  share: number;
  method: RecipeName;
  control: RecipeName;
  method_ci: Interval;
  control_ci: Interval;
  difference: Interval;
  verdict: Verdict;
}

export interface RunResult {
  runDir: string;
  outcomes: Stage2Outcome[];
  pretrain: PretrainOutcome;
  comparisons: Comparison[];
  table: string;
  files: string[];
}

/** The stage-2 runs of one seed: baseline and Parrot at every share, the ablations at the primary share. */
export function stage2Runs(config: ExampleConfig): Array<{ recipe: RecipeName; share: number }> {
  if (!config.shares.includes(config.primaryShare)) throw new Error(`primaryShare must be one of shares (${config.shares.join(', ')}), got ${config.primaryShare}`);
  return config.shares.flatMap((share) => RECIPES.filter((r) => share === config.primaryShare || r === 'baseline' || r === 'parrot').map((recipe) => ({ recipe, share })));
}

export async function runExample(options: RunOptions): Promise<RunResult> {
  const config: ExampleConfig = { ...DEFAULT_CONFIG, ...options.config };
  const perLanguage = options.perLanguage ?? BUDGETS.default.perLanguage;
  const budget = options.budget ?? 'custom';
  const cacheDir = `${options.outDir}/cache`;
  await mkdir(cacheDir, { recursive: true });
  const runDir = await createRunDirectory(options.outDir, budget);
  const stream = options.stream ?? process.stdout;

  const pretrainSeed = options.pretrainSeed ?? 0;
  const reuse = await hasPretrained(cacheDir, pretrainSeed, config);
  const runs = stage2Runs(config);
  const stage2: Task[] = options.seeds.flatMap((seed) =>
    runs.map(({ recipe, share }): Task => ({
      kind: 'stage2', seed, recipe, share,
      checkpointDir: recipe === 'parrot' && share === config.primaryShare && seed === options.seeds[0] ? `${options.outDir}/checkpoint` : null,
    })),
  );
  const totalSteps = (reuse ? 0 : config.stage0Steps + config.stage1Steps) + stage2.length * config.stage2Steps;
  const bar = new ProgressBar(totalSteps, { stream: options.stream, label: `parrot-multilingual ${budget}`, logEvery: 20 });
  const metrics: string[] = [];
  let done = 0;
  const onStep = (task: Task, stage: string, report: StepReport) => {
    done++;
    metrics.push(toJsonLine({ task: taskLabel(task), stage, seed: task.seed, recipe: task.kind === 'stage2' ? task.recipe : null, share: task.kind === 'stage2' ? task.share : null, ...report }));
    bar.update({ step: done, loss: report.loss, lr: report.lr, run: `${taskLabel(task)} ${stage}` }); // parallel runs share the bar: each line says whose it is
  };

  const context: Omit<TaskContext, 'onStep'> = { backend: options.backend, config, cacheDir, perLanguage };
  if (reuse) stream.write(`reusing the pretrained (stage 0 + 1) weights in ${cacheDir} (same settings)\n`);
  const pretrainTasks: Task[] = reuse ? [] : [{ kind: 'pretrain', seed: pretrainSeed }];
  const workers = Math.max(0, Math.min(options.workers ?? Math.min(2, cpus().length), stage2.length));
  let results: Outcome[];
  if (workers === 0) {
    results = [];
    for (const task of [...pretrainTasks, ...stage2]) {
      const outcome = await runTask(task, { ...context, onStep });
      if (outcome) results.push(outcome);
    }
  } else {
    results = (
      await runOnWorkerPool<Task, { stage: string; report: StepReport }, Outcome | null>({
        entry: new URL('./worker-entry.mjs', import.meta.url),
        workerData: context,
        count: workers,
        tasks: pretrainTasks.length ? pretrainTasks : stage2,
        followUps: (task) => (task.kind === 'pretrain' ? stage2 : []),
        onProgress: (task, { stage, report }) => onStep(task, stage, report),
        label: taskLabel,
      })
    ).flatMap(({ result }) => (result ? [result] : []));
  }
  bar.finish();
  const pretrain = results.find((o): o is PretrainOutcome => o.kind === 'pretrain') ?? (await scorePretrained(context));
  const outcomes = results.filter((o): o is Stage2Outcome => o.kind === 'stage2');
  outcomes.sort((a, b) => a.seed - b.seed || a.share - b.share || a.recipe.localeCompare(b.recipe));

  const analysis = analyse(outcomes, pretrain, config, options.seeds, perLanguage);
  const files = await writeResults(runDir, analysis, metrics, { config, budget, seeds: options.seeds, backend: `${options.backend} (this thread: ${tf.getBackend()})`, perLanguage, pretrainSeed, outcomes, pretrain });
  return { runDir, outcomes, pretrain, comparisons: analysis.comparisons, table: analysis.table, files };
}

/** Question indices (held-out order: `perLanguage` per language, LANGUAGES order) of some languages. */
function indicesOf(languages: readonly Language[], perLanguage: number): number[] {
  return languages.flatMap((l) => Array.from({ length: perLanguage }, (_, i) => LANGUAGES.indexOf(l) * perLanguage + i));
}
const NON_ENGLISH = LANGUAGES.filter((l) => l !== 'en');

type Metric = keyof Omit<QuestionScores, 'samples'>;

interface Analysis {
  comparisons: Comparison[];
  table: string;
  markdown: string;
  dose: Array<{ x: number; value: number; low: number; high: number; series: string }>;
  byLanguage: Array<{ group: string; series: string; value: number; low: number; high: number }>;
  routing: Array<{ row: string; column: string; value: number }>;
}

function analyse(outcomes: Stage2Outcome[], pretrain: PretrainOutcome, config: ExampleConfig, seeds: number[], perLanguage: number): Analysis {
  const nonEnglish = indicesOf(NON_ENGLISH, perLanguage);
  /** `[seed][question]` scores of a recipe at a share, restricted to `subset`. */
  const scores = (recipe: RecipeName, share: number, metric: Metric, subset: number[]): number[][] =>
    seeds.map((seed) => {
      const o = outcomes.find((x) => x.recipe === recipe && x.share === share && x.seed === seed);
      if (!o) throw new Error(`no outcome for ${recipe} at ${share} seed ${seed}`);
      return subset.map((q) => o.scores[metric][q]);
    });
  const cell = (values: number[][]): Interval => bootstrapInterval(values, BOOTSTRAP);
  const compare = (claim: string, method: RecipeName, control: RecipeName, share: number, metric: Metric = 'exact'): Comparison => {
    const r = pairedBootstrap(scores(method, share, metric, nonEnglish), scores(control, share, metric, nonEnglish), BOOTSTRAP);
    return { claim, metric, share, method, control, method_ci: r.a, control_ci: r.b, difference: r.difference, verdict: verdictOf(r.difference, 'higher', SMALLEST_EFFECT) };
  };
  const p = config.primaryShare;
  const pct = (share: number) => `${(100 * share).toFixed(0)} %`;
  const comparisons: Comparison[] = [
    compare(`primary: ParrotMoE beats the LLaVA recipe on non-English questions (exact match, ${pct(p)} non-English)`, 'parrot', 'baseline', p),
    compare('ParrotMoE answers non-English questions in their language more often', 'parrot', 'baseline', p, 'rightLanguage'),
    compare('the gain needs the language routing (router frozen at uniform as control)', 'parrot', 'parrot-uniform', p),
    compare('the gain is more than added capacity (parameter-matched plain MLP as control)', 'parrot', 'mlp', p),
    ...config.shares.filter((s) => s !== p).map((s) => compare(`ParrotMoE beats the LLaVA recipe at ${pct(s)} non-English (dose–response)`, 'parrot', 'baseline', s)),
  ];

  const n = seeds.length;
  const cellText = (i: Interval) => formatInterval(i);
  const mainRows = RECIPES.map((recipe) => [
    recipe,
    cellText(cell(scores(recipe, p, 'exact', nonEnglish))),
    cellText(cell(scores(recipe, p, 'rightLanguage', nonEnglish))),
    cellText(cell(scores(recipe, p, 'english', nonEnglish))),
    cellText(cell(scores(recipe, p, 'exact', indicesOf(['en'], perLanguage)))),
  ]);
  const main = `Held-out results at ${pct(p)} non-English stage-2 data: % with 95 % CI (paired bootstrap over ${n} seed(s) and the questions; ` +
    `${nonEnglish.length} non-English and ${perLanguage} English questions per seed)\n\n` +
    markdownTable(['recipe', 'non-English exact match', 'non-English answered in its language', 'non-English answered in English', 'English exact match'], mainRows);
  const verdicts = 'Claims (Δ = method − control, non-English questions, points with 95 % CI; verdict: CI above 0 → reproduced; ' +
    `below 0 or below +${(100 * SMALLEST_EFFECT).toFixed(0)} → not reproduced; else inconclusive at this budget)${fewSeedsWarning(n, BUDGETS.full.seeds.length)}\n\n` +
    markdownTable(['claim', 'metric', 'share', 'method', 'control', 'Δ', 'verdict'], comparisons.map((c) => [c.claim, c.metric, pct(c.share), c.method, c.control, formatInterval(c.difference, { signed: true }), c.verdict]));
  const doseRows = config.shares.map((s) => {
    const c = comparisons.find((x) => x.share === s && x.method === 'parrot' && x.control === 'baseline' && x.metric === 'exact')!;
    return [pct(s), cellText(c.control_ci), cellText(c.method_ci), formatInterval(c.difference, { signed: true }), c.verdict];
  });
  const doseTable = 'Dose–response: non-English exact match against the non-English share of stage 2\n\n' +
    markdownTable(['non-English share', 'baseline', 'parrot', 'Δ parrot − baseline', 'verdict'], doseRows);

  const byLanguage = LANGUAGES.flatMap((language) =>
    RECIPES.map((recipe) => {
      const i = cell(scores(recipe, p, 'exact', indicesOf([language], perLanguage)));
      return { group: language, series: recipe, value: i.estimate, low: i.low, high: i.high };
    }),
  );
  const languageTable = `Exact match per language at ${pct(p)} (${perLanguage} questions per language and seed; 95 % CI)\n\n` +
    markdownTable(['language', ...RECIPES], LANGUAGES.map((l) => [l, ...RECIPES.map((r) => {
      const x = byLanguage.find((y) => y.group === l && y.series === r)!;
      return cellText({ estimate: x.value, low: x.low, high: x.high });
    })]));

  const one = (s: QuestionScores, metric: Metric, language: Language) => cellText(cell([indicesOf([language], perLanguage).map((q) => s[metric][q])]));
  const premiseTable = `Premise checks (shared pretraining, one seed; 95 % CI over the questions): stage 0 = text only, the English colour word in the image's place; ` +
    'after stage 1 = image questions after the English-only alignment\n\n' +
    markdownTable(['language', 'stage 0: text exact match', 'after stage 1: exact match', 'after stage 1: answered in English'],
      LANGUAGES.map((l) => [l, one(pretrain.textPremise, 'exact', l), one(pretrain.afterAlignment, 'exact', l), one(pretrain.afterAlignment, 'english', l)]));

  const dose = config.shares.flatMap((s) => {
    const c = comparisons.find((x) => x.share === s && x.method === 'parrot' && x.control === 'baseline' && x.metric === 'exact')!;
    return [
      { x: 100 * s, value: c.control_ci.estimate, low: c.control_ci.low, high: c.control_ci.high, series: 'baseline (LLaVA recipe)' },
      { x: 100 * s, value: c.method_ci.estimate, low: c.method_ci.low, high: c.method_ci.high, series: 'Parrot (ParrotMoE)' },
      { x: 100 * s, value: c.difference.estimate, low: c.difference.low, high: c.difference.high, series: 'Δ parrot − baseline' },
    ];
  });

  const routingRuns = outcomes.filter((o) => o.recipe === 'parrot' && o.share === p);
  const routing = LANGUAGES.flatMap((language) => {
    const perSeed = routingRuns.map((o) => o.routingByLanguage[language]).filter((v): v is number[] => !!v);
    if (!perSeed.length) return [];
    return perSeed[0].map((_, e) => ({ row: language, column: `expert ${e}`, value: perSeed.reduce((s, v) => s + v[e], 0) / perSeed.length }));
  });
  const routingTable = routing.length
    ? `ParrotMoE mean routing weights per language (held-out prompts, ${pct(p)}, averaged over seeds)\n\n` +
      markdownTable(['language', ...routing.filter((r) => r.row === 'en').map((r) => r.column)], LANGUAGES.map((l) => [l, ...routing.filter((r) => r.row === l).map((r) => r.value)]))
    : '';
  const table = [main, verdicts, doseTable].join('\n\n');
  const markdown = [main, verdicts, doseTable, languageTable, premiseTable, routingTable].filter(Boolean).join('\n\n');
  return { comparisons, table, markdown, dose, byLanguage, routing };
}

async function writeResults(
  runDir: string,
  analysis: Analysis,
  metrics: string[],
  record: { config: ExampleConfig; budget: string; seeds: number[]; backend: string; perLanguage: number; pretrainSeed: number; outcomes: Stage2Outcome[]; pretrain: PretrainOutcome },
): Promise<string[]> {
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await writeFile(`${runDir}/${name}`, text);
    files.push(`${runDir}/${name}`);
  };
  await write('metrics.jsonl', metrics.join(''));
  await write('results.json', `${JSON.stringify({ ...record, smallestEffect: SMALLEST_EFFECT, bootstrap: BOOTSTRAP, comparisons: analysis.comparisons }, null, 2)}\n`);
  await write('dose-response.svg', await renderSvg(doseResponseSpec({
    title: 'Non-English exact match vs non-English share of stage 2 (95 % CI)', rows: analysis.dose,
    xTitle: 'non-English share of stage-2 data (%)', yTitle: 'exact match / Δ', xScale: 'log', zeroLine: true,
  })));
  await write('accuracy-by-language.svg', await renderSvg(groupedBarSpec({
    title: `Exact match by language at ${(100 * record.config.primaryShare).toFixed(0)} % non-English (95 % CI)`, rows: analysis.byLanguage, yTitle: 'exact match', yDomain: [0, 1],
  })));
  if (analysis.routing.length) {
    await write('router-weights.svg', await renderSvg(heatmapSpec({ title: 'ParrotMoE routing weight per language (held-out prompts)', rows: analysis.routing, rowTitle: 'language', columnTitle: 'expert', valueTitle: 'weight' })));
  }
  const c = record.config;
  await write(
    'results.md',
    `# parrot-multilingual results (${record.budget} budget)\n\nBackend: ${record.backend}; pretraining (shared, seed ${record.pretrainSeed}): stage 0 text ` +
      `${c.stage0Steps} steps, stage 1 English-only projector alignment ${c.stage1Steps} steps; stage 2: ${c.stage2Steps} steps per recipe, share and seed ` +
      `(seeds ${record.seeds.join(', ')}); batch ${c.batchSize}; ${record.perLanguage} held-out questions per language.\n\n${analysis.markdown}\n\n` +
      'Plots: dose-response.svg, accuracy-by-language.svg, router-weights.svg\n',
  );
  return files;
}
