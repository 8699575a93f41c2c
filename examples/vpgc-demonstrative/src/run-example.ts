/**
 * Orchestrates the VPG-C experiment: one task per number of queries N — stage 1 (shared by the
 * seeds), then per seed every stage-2 variant from the same frozen stage-1 model, scored on the same
 * held-out questions — on
 * worker threads or inline; one progress bar whose lines say which run and stage they belong to; then
 * the statistics (paired bootstrap over seeds and questions, verdicts) and the outputs, in a directory
 * of its own per invocation: `<out>/runs/<time>-<budget>/{results.md, results.json, metrics.jsonl,
 * dose-response.svg, loss.svg}`; the host + VPG-C checkpoint of the first seed at the primary N goes to
 * `<out>/checkpoint` (the latest).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { ProgressBar } from '@mllm/train';
import {
  bootstrapInterval,
  createRunDirectory,
  doseResponseSpec,
  formatInterval,
  lineSpec,
  markdownTable,
  pairedBootstrap,
  renderSvg,
  runOnWorkerPool,
  verdictOf,
  type ExampleRunOptions,
  type Interval,
  type SeedQuestionScores,
  type Verdict,
} from '@mllm-example/common';
import { DEFAULT_CONFIG, REGION_VARIANTS, ZERO_SHOT_VARIANTS, accuracyOf, type ExampleConfig } from './recipe.js';
import { EVAL_SETS, runSeed, taskLabel, type EvalSet, type Outcome, type SeedProgress, type SeedResult, type SeedTask, type Variant } from './seed-task.js';

export { EVAL_SETS, type EvalSet, type Outcome, type Variant };

/**
 * The two budgets; both print the same tables (the docs report `full`). Pre-registered with the
 * design (docs/examples/vpgc-demonstrative.md, "Pre-registration"), before any full run.
 */
export const BUDGETS = {
  /** ≤ 5 min on 2 quiet cores (`pnpm example:vpgc`). */
  default: { config: { stage1Steps: 250, stage2Steps: 60, sdtSteps: 60, regionQuestions: 60, zeroShotQuestions: 60 }, seeds: [1, 2] },
  /** ≤ 35 min on one core (`--workers 1`); the docs report it. */
  full: { config: { stage1Steps: 600, stage2Steps: 150, sdtSteps: 150, regionQuestions: 240, zeroShotQuestions: 200 }, seeds: [1, 2, 3] },
} as const satisfies Record<string, { config: Partial<ExampleConfig>; seeds: number[] }>;
export type BudgetName = keyof typeof BUDGETS;

/**
 * Pre-registered: the primary metric is the accuracy on held-out region questions (multiple choice,
 * options ranked by mean per-token log-likelihood), vpgc − frozen at the primary number of queries; a
 * gain smaller than 2 points does not count as reproducing a claim.
 */
export const SMALLEST_EFFECT = 0.02;
export const BOOTSTRAP = { resamples: 2000, seed: 0 };

export type RunOptions = ExampleRunOptions<ExampleConfig> & {
  /** Name of the budget (labels the run directory and results). */
  budget?: string;
  /** Seed of the shared stage 1 (default 0); `seeds` are those of the stage-2 variants (data order, module init). */
  pretrainSeed?: number;
};

/** One comparison with its paired CI and verdict. */
export interface Comparison {
  claim: string;
  evalSet: EvalSet;
  queries: number;
  method: Variant;
  control: Variant;
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
  /** Wall-clock seconds of the whole run, and per-stage seconds summed over tasks. */
  seconds: { total: number; stage1: number; stage2: number; scoring: number };
  backend: string;
}

/** Progress-bar units of one task: its training steps and scored questions. */
function taskUnits(config: ExampleConfig, queries: number, seeds: number): number {
  const trained = REGION_VARIANTS.length - 1;
  const a = config.stage1Steps + 2 * config.regionQuestions + seeds * trained * (config.stage2Steps + config.regionQuestions);
  const b = queries === config.primaryQueries ? 2 * config.zeroShotQuestions + seeds * (ZERO_SHOT_VARIANTS.length - 1) * (config.sdtSteps + 2 * config.zeroShotQuestions) : 0;
  return a + b;
}

export async function runExample(options: RunOptions): Promise<RunResult> {
  const config: ExampleConfig = { ...DEFAULT_CONFIG, ...options.config };
  if (!config.queryCounts.includes(config.primaryQueries)) throw new Error(`primaryQueries must be one of queryCounts (${config.queryCounts.join(', ')}), got ${config.primaryQueries}`);
  const budget = options.budget ?? 'custom';
  const runDir = await createRunDirectory(options.outDir, budget);
  // Primary N first: its task is the longest (experiment B) and holds the checkpoint.
  const counts = [config.primaryQueries, ...config.queryCounts.filter((q) => q !== config.primaryQueries)];
  const pretrainSeed = options.pretrainSeed ?? 0;
  const tasks: SeedTask[] = counts.map((queries) => ({
    pretrainSeed, seeds: options.seeds, queries, backend: options.backend, config,
    checkpointDir: queries === config.primaryQueries ? `${options.outDir}/checkpoint` : null,
  }));
  const total = tasks.reduce((s, t) => s + taskUnits(config, t.queries, options.seeds.length), 0);
  const bar = new ProgressBar(total, { stream: options.stream, label: `vpgc-demonstrative ${budget}`, logEvery: 25 });
  bar.start();
  let done = 0;
  const lastLoss = new Map<string, number>(); // per task: parallel tasks interleave
  const onProgress = (task: SeedTask, p: SeedProgress) => {
    const label = taskLabel(task);
    if (p.kind === 'step') lastLoss.set(label, p.loss);
    // parallel tasks share the bar: each line says whose run and stage it shows
    bar.update({ step: ++done, loss: lastLoss.get(label) ?? NaN, lr: p.kind === 'step' ? p.lr : undefined, run: `${label} ${p.stage}` });
  };
  const started = performance.now();
  const workers = Math.max(0, Math.min(options.workers ?? Math.min(2, cpus().length), tasks.length));
  let results: SeedResult[];
  if (workers === 0) {
    results = [];
    for (const task of tasks) results.push(await runSeed(task, (p) => onProgress(task, p)));
  } else {
    results = (
      await runOnWorkerPool<SeedTask, SeedProgress, SeedResult>({
        entry: new URL('./worker-entry.mjs', import.meta.url),
        workerData: null,
        count: workers,
        tasks,
        onProgress: (task, progress) => onProgress(task, progress),
        label: taskLabel,
      })
    ).map(({ result }) => result);
  }
  bar.finish();
  results.sort((a, b) => a.queries - b.queries);
  const outcomes = results.flatMap((r) => r.outcomes).sort((a, b) => a.seed - b.seed || a.queries - b.queries);
  const sum = (key: 'stage1' | 'stage2' | 'scoring') => results.reduce((s, r) => s + r.seconds[key], 0);
  const seconds = { total: (performance.now() - started) / 1000, stage1: sum('stage1'), stage2: sum('stage2'), scoring: sum('scoring') };
  const backend = results[0]?.backend ?? String(options.backend);
  const analysis = analyse(outcomes, config, options.seeds);
  const metrics = results.flatMap((r) => r.metrics);
  const files = await writeResults(runDir, analysis, metrics, { config, budget, seeds: options.seeds, pretrainSeed, backend, seconds, workers, outcomes });
  return { runDir, outcomes, comparisons: analysis.comparisons, table: analysis.table, files, seconds, backend };
}

export interface Analysis {
  comparisons: Comparison[];
  table: string;
  markdown: string;
  dose: Array<{ x: number; value: number; low: number; high: number; series: string }>;
}

/** The analysis of a run's outcomes: cells and comparisons with paired bootstrap CIs, verdicts, tables. */
export function analyse(outcomes: Outcome[], config: ExampleConfig, seeds: number[]): Analysis {
  /** `[seed][question]` 0/1 scores of a variant (`sum`: ranked by summed log-likelihood). */
  const scores = (evalSet: EvalSet, variant: Variant, queries: number, sum = false): number[][] =>
    seeds.map((seed) => {
      const o = outcomes.find((x) => x.seed === seed && x.queries === queries && x.evalSet === evalSet && x.variant === variant);
      if (!o) throw new Error(`no outcome for ${variant} on ${evalSet} at N=${queries}, seed ${seed}`);
      return sum ? o.result.correctSum : o.result.correct;
    });
  const cell = (values: SeedQuestionScores): Interval => bootstrapInterval(values, BOOTSTRAP);
  /**
   * One variant's cell. The frozen model is the same for every seed (no stage 2), so its seed rows are
   * identical copies: its own interval uses one row (over its questions), not S copies counted as
   * independent. Comparisons keep every seed row (paired with the trained variant's seed).
   */
  const frozenOnce = (rows: number[][], variant: Variant) => (variant === 'frozen' ? rows.slice(0, 1) : rows);
  const cellOf = (evalSet: EvalSet, variant: Variant, queries: number, sum = false): Interval => cell(frozenOnce(scores(evalSet, variant, queries, sum), variant));
  const compareScores = (claim: string, evalSet: EvalSet, queries: number, method: Variant, control: Variant, a: SeedQuestionScores, b: SeedQuestionScores): Comparison => {
    const r = pairedBootstrap(a, b, BOOTSTRAP);
    return { claim, evalSet, queries, method, control, method_ci: r.a, control_ci: r.b, difference: r.difference, verdict: verdictOf(r.difference, 'higher', SMALLEST_EFFECT) };
  };
  const compare = (claim: string, evalSet: EvalSet, queries: number, method: Variant, control: Variant): Comparison => {
    const c = compareScores(claim, evalSet, queries, method, control, scores(evalSet, method, queries), scores(evalSet, control, queries));
    return control === 'frozen' ? { ...c, control_ci: cellOf(evalSet, control, queries) } : c;
  };
  const P = config.primaryQueries;
  const nMax = Math.max(...config.queryCounts);
  const gain = (queries: number) => {
    const a = scores('region', 'vpgc', queries);
    const b = scores('region', 'frozen', queries);
    return a.map((row, s) => row.map((v, q) => v - b[s][q]));
  };
  const comparisons: Comparison[] = [
    compare(`primary (A): VPG-C trained on region questions beats the same frozen MLLM without it (N = ${P})`, 'region', P, 'vpgc', 'frozen'),
    compare(`A: VPG-C beats tuning the VPG's fixed-query path with the same parameter count (N = ${P})`, 'region', P, 'vpgc', 'tuned-vpg'),
    compare(`A: the gain needs the instruction guidance (VPG-C with qformer_proj zeroed and frozen as control, N = ${P})`, 'region', P, 'vpgc', 'vpgc-noguide'),
    ...config.queryCounts.filter((q) => q !== P).map((q) => compare(`A, dose–response: VPG-C beats the frozen MLLM at N = ${q}`, 'region', q, 'vpgc', 'frozen')),
    ...(nMax !== P
      ? [compareScores(`A, dose–response: the gain shrinks as queries grow (gain at N = ${P} − gain at N = ${nMax})`, 'region', P, 'vpgc', 'vpgc', gain(P), gain(nMax))]
      : []),
    compare(`B (zero-shot): VPG-C trained only on synthetic which-differs pairs beats the frozen MLLM on the unseen what-changed task (N = ${P})`, 'what-changed', P, 'sdt-vpgc', 'frozen'),
    compare(`B: the zero-shot gain needs the guidance (SDT-trained VPG-C with qformer_proj zeroed and frozen as control, N = ${P})`, 'what-changed', P, 'sdt-vpgc', 'sdt-vpgc-noguide'),
  ];
  const n = seeds.length;
  const regionQ = config.regionQuestions;
  const trainableOf = (variant: Variant, queries: number) => outcomes.find((o) => o.variant === variant && o.queries === queries)?.trainable ?? 0;

  /** VPG-C vs the frozen MLLM on region questions, per N (the dose–response table and plot). */
  const vpgcVsFrozen = new Map(config.queryCounts.map((q) => [q, pairedBootstrap(scores('region', 'vpgc', q), scores('region', 'frozen', q), BOOTSTRAP)]));
  const doseRows = config.queryCounts.map((q) => [
    q,
    ...REGION_VARIANTS.map((v) => formatInterval(cellOf('region', v, q))),
    formatInterval(vpgcVsFrozen.get(q)!.difference, { signed: true }),
  ]);
  const doseTable = `Experiment A: held-out region-question accuracy (%) against the number of VPG queries N, 95 % CI (paired bootstrap over ${n} seed(s) and ${regionQ} questions per seed; chance 16.7 %)\n\n` +
    markdownTable(['N (queries)', ...REGION_VARIANTS, 'Δ vpgc − frozen'], doseRows);
  const claimsTable = `Claims (Δ = method − control, points with 95 % CI; verdict: CI above 0 → reproduced; below 0 or below +${(100 * SMALLEST_EFFECT).toFixed(0)} → not reproduced; else inconclusive at this budget)\n\n` +
    markdownTable(['claim', 'set', 'N', 'method', 'control', 'Δ', 'verdict'], comparisons.map((c) => [c.claim, c.evalSet, c.queries, c.method, c.control, formatInterval(c.difference, { signed: true }), c.verdict]));
  const zeroShotRows = ZERO_SHOT_VARIANTS.map((v) => [v, trainableOf(v, P), ...(['what-changed', 'which-differs'] as const).flatMap((set) => [formatInterval(cellOf(set, v, P)), formatInterval(cellOf(set, v, P, true))])]);
  const zeroShotTable = `Experiment B (zero-shot, N = ${P}): accuracy (%) with 95 % CI, ${config.zeroShotQuestions} questions per set and seed (chance 25.0 / 33.3 %)\n\n` +
    markdownTable(['variant', 'trainable parameters', 'what changed (held-out task), mean log-lik', 'sum log-lik', 'which differs (trained task), mean log-lik', 'sum log-lik'], zeroShotRows);
  const premise = pairedBootstrap(scores('region', 'frozen', nMax).slice(0, 1), scores('region', 'frozen', P).slice(0, 1), BOOTSTRAP); // the frozen model: one row
  const premiseRows = config.queryCounts.map((q) => {
    const r = pairedBootstrap(scores('region-sparse', 'frozen', q).slice(0, 1), scores('region', 'frozen', q).slice(0, 1), BOOTSTRAP);
    return [q, formatInterval(r.a), formatInterval(r.b), formatInterval(r.difference, { signed: true })];
  });
  const premiseText = `Premise checks (reported, not claims; the frozen stage-1 MLLM, ${regionQ} questions per set, CI over the questions): ` +
    `region questions on busy scenes at N = ${P}: ${formatInterval(premise.b)} %, at N = ${nMax}: ${formatInterval(premise.a)} % ` +
    `(N = ${nMax} − N = ${P}: ${formatInterval(premise.difference, { signed: true })} points); sparse scenes (one object: the fixed queries suffice) vs busy scenes:\n\n` +
    markdownTable(['N (queries)', 'sparse scenes', 'busy scenes', 'sparse − busy'], premiseRows);
  const budgetRows = REGION_VARIANTS.map((v) => [v, config.queryCounts.map((q) => trainableOf(v, q)).join(' / ')]);
  const budgetTable = markdownTable([`variant: trainable parameters in stage 2 (N = ${config.queryCounts.join(' / ')})`, 'count'], budgetRows);
  const sumRows = config.queryCounts.map((q) => [q, ...REGION_VARIANTS.map((v) => formatInterval(cellOf('region', v, q, true)))]);
  const sumTable = markdownTable(['N (queries), summed log-lik ranking', ...REGION_VARIANTS], sumRows);

  const dose = config.queryCounts.flatMap((q) => {
    const d = vpgcVsFrozen.get(q)!;
    const frozen = cellOf('region', 'frozen', q);
    const noguide = cellOf('region', 'vpgc-noguide', q);
    const tuned = cellOf('region', 'tuned-vpg', q);
    return [
      { x: q, value: frozen.estimate, low: frozen.low, high: frozen.high, series: 'frozen MLLM' },
      { x: q, value: d.a.estimate, low: d.a.low, high: d.a.high, series: 'frozen MLLM + VPG-C' },
      { x: q, value: noguide.estimate, low: noguide.low, high: noguide.high, series: 'VPG-C without guidance (ablation)' },
      { x: q, value: tuned.estimate, low: tuned.low, high: tuned.high, series: 'VPG fixed-query path tuned (same parameter count)' },
      { x: q, value: d.difference.estimate, low: d.difference.low, high: d.difference.high, series: 'Δ VPG-C − frozen' },
    ];
  });
  const table = [doseTable, claimsTable, zeroShotTable, premiseText].join('\n\n');
  const markdown = [
    doseTable, claimsTable, zeroShotTable, premiseText,
    `Region-question accuracy (%) with options ranked by summed log-likelihood (secondary ranking)\n\n${sumTable}`,
    `Trainable parameters per stage-2 variant\n\n${budgetTable}`,
  ].join('\n\n');
  return { comparisons, table, markdown, dose };
}

type RunRecord = { config: ExampleConfig; budget: string; seeds: number[]; pretrainSeed: number; backend: string; seconds: RunResult['seconds']; workers: number; outcomes: Outcome[] };

async function writeResults(runDir: string, analysis: Analysis, metrics: string[], record: RunRecord): Promise<string[]> {
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await writeFile(`${runDir}/${name}`, text);
    files.push(`${runDir}/${name}`);
  };
  await write('metrics.jsonl', metrics.join(''));
  await write('results.json', `${JSON.stringify({ ...record, smallestEffect: SMALLEST_EFFECT, bootstrap: BOOTSTRAP, comparisons: analysis.comparisons }, null, 2)}\n`);
  const lossRows: Array<{ x: number; value: number; series: string }> = [];
  const c = record.config;
  for (const line of metrics) {
    const m = JSON.parse(line) as { kind: string; seed: number | null; queries: number; stage: string; step: number; loss: number };
    if (m.kind !== 'step' || (m.seed !== null && m.seed !== record.seeds[0]) || m.queries !== c.primaryQueries) continue;
    lossRows.push({ x: m.stage === 'stage 1' ? m.step : c.stage1Steps + m.step, value: m.loss, series: m.stage });
  }
  await write('loss.svg', await renderSvg(lineSpec({
    title: `Training loss, seed ${record.seeds[0]}, N = ${c.primaryQueries} (stage 2 variants from step ${c.stage1Steps + 1})`,
    rows: lossRows, xTitle: 'step', yTitle: 'loss',
  })));
  files.push(...(await writeReport(runDir, analysis, record)));
  return files;
}

/** results.md and dose-response.svg, from the analysis (written by a run, rewritten by `reanalyseRun`). */
async function writeReport(runDir: string, analysis: Analysis, record: RunRecord, note = ''): Promise<string[]> {
  const c = record.config;
  await writeFile(`${runDir}/dose-response.svg`, await renderSvg(doseResponseSpec({
    title: 'Region-question accuracy vs number of VPG queries (95 % CI)', rows: analysis.dose,
    xTitle: 'learned queries of the VPG (image tokens per image)', yTitle: 'accuracy / Δ', xScale: 'log', zeroLine: true,
  })));
  const s = record.seconds;
  await writeFile(
    `${runDir}/results.md`,
    `# vpgc-demonstrative results (${record.budget} budget)\n\nBackend: ${record.backend}; seeds ${record.seeds.join(', ')}; N = ${c.queryCounts.join(', ')} queries (primary ${c.primaryQueries}); ` +
      `batch ${c.batchSize}; stage 1 ${c.stage1Steps} steps; stage 2 ${c.stage2Steps} steps per region variant, ${c.sdtSteps} per synthetic-pair variant; ` +
      `${c.regionQuestions} held-out region questions, ${c.zeroShotQuestions} what-changed and which-differs questions per seed.\n` +
      `Wall time: ${s.total.toFixed(0)} s on ${record.workers === 0 ? 'this thread' : `${record.workers} worker thread(s)`}; summed over tasks: ` +
      `stage 1 ${s.stage1.toFixed(0)} s, stage 2 ${s.stage2.toFixed(0)} s, scoring ${s.scoring.toFixed(0)} s.\n${note}\n${analysis.markdown}\n\n` +
      'Plots: dose-response.svg, loss.svg. Checkpoint (first seed, primary N): <out>/checkpoint/ (host + VPG, `loadHostModel` with a `QFormerVPG` built from vpg-config.json) and checkpoint/vpgc-adapter/ (`loadAdapterFiles` onto the restored host).\n',
  );
  return [`${runDir}/dose-response.svg`, `${runDir}/results.md`];
}

/**
 * Recompute a run's tables from its results.json (never rewritten: it keeps the comparisons as the run
 * wrote them) and rewrite its results.md and dose-response.svg — for an analysis fix after a run, so
 * that nothing is re-trained. Returns the analysis.
 */
export async function reanalyseRun(runDir: string): Promise<Analysis> {
  const record = JSON.parse(await readFile(`${runDir}/results.json`, 'utf8')) as RunRecord;
  const analysis = analyse(record.outcomes, record.config, record.seeds);
  await writeReport(runDir, analysis, record, `Tables recomputed from results.json by \`--reanalyse\` (${new Date().toISOString().slice(0, 10)}); the comparisons in results.json are the run's own.\n`);
  return analysis;
}
