/**
 * Orchestrates the Parrot example: writes the held-out MMMB file, runs the tasks (stage 1 per
 * seed, then baseline and Parrot stage 2) on worker threads or inline, shows one progress bar,
 * and writes results.md / results.json / metrics.jsonl / SVG plots.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { createRng } from '@mllm/core';
import { ProgressBar, toJsonLine } from '@mllm/train';
import { writeTsv } from '@mllm/eval';
import { formatPercent, groupedBarSpec, heatmapSpec, lineSpec, markdownTable, meanStd, renderSvg, runOnWorkerPool, type ExampleRunOptions } from '@mllm-example/common';
import { heldOutRows } from './dataset.js';
import { LANGUAGES } from './questions.js';
import { DEFAULT_CONFIG, type ExampleConfig, type StepReport } from './recipe.js';
import { hasStage1, runTask, taskLabel, type Stage2Outcome, type Task, type TaskContext } from './tasks.js';

export interface RunOptions extends ExampleRunOptions<ExampleConfig> {
  /** Seed of the shared stage 1 (default 0); `seeds` are those of the stage-2 runs (data order, MoE init). */
  stage1Seed?: number;
  /** Held-out questions per language. */
  perLanguage?: number;
}

export interface RunResult {
  outcomes: Stage2Outcome[];
  table: string;
  files: string[];
}

export async function runExample(options: RunOptions): Promise<RunResult> {
  const config: ExampleConfig = { ...DEFAULT_CONFIG, ...options.config };
  const out = options.outDir;
  await mkdir(out, { recursive: true });
  const heldOutPath = `${out}/mmmb-mini.tsv`;
  await writeFile(heldOutPath, writeTsv(heldOutRows(12345, options.perLanguage ?? 24, config.imageSize, config.questionKinds, config.optionOrder, createRng)));

  const stage1Seed = options.stage1Seed ?? 0;
  const reuseStage1 = await hasStage1(out, stage1Seed, config);
  const totalSteps = (reuseStage1 ? 0 : config.stage1Steps) + options.seeds.length * 2 * config.stage2Steps;
  const bar = new ProgressBar(totalSteps, { stream: options.stream, label: 'parrot-multilingual', logEvery: 20 });
  const metrics: string[] = [];
  let done = 0;
  let lastLoss = NaN;
  const onStep = (task: Task, report: StepReport) => {
    done++;
    lastLoss = report.loss;
    metrics.push(toJsonLine({ task: taskLabel(task), seed: task.seed, recipe: task.kind === 'stage2' ? task.recipe : 'stage1', ...report }));
    bar.update({ step: done, loss: lastLoss, lr: report.lr, run: task.kind === 'stage1' ? `stage 1 seed ${task.seed}` : `stage 2 seed ${task.seed} ${task.recipe}` }); // parallel runs share the bar: each line says whose it is
  };

  const context: Omit<TaskContext, 'onStep'> = { backend: options.backend, config, outDir: out, heldOutPath };
  if (reuseStage1) (options.stream ?? process.stdout).write(`reusing stage-1 weights in ${out}/stage1.safetensors (same settings)\n`);
  const stage1: Task[] = reuseStage1 ? [] : [{ kind: 'stage1', seed: stage1Seed }];
  const stage2: Task[] = options.seeds.flatMap((seed): Task[] => [
    { kind: 'stage2', seed, recipe: 'baseline', saveCheckpoint: false },
    { kind: 'stage2', seed, recipe: 'parrot', saveCheckpoint: seed === options.seeds[0] },
  ]);
  const workers = Math.max(0, Math.min(options.workers ?? Math.min(2, cpus().length), stage2.length));
  const outcomes = workers === 0
    ? await runInline([...stage1, ...stage2], { ...context, onStep })
    : (
        await runOnWorkerPool<Task, StepReport, Stage2Outcome | null>({
          entry: new URL('./worker-entry.mjs', import.meta.url),
          workerData: context,
          count: workers,
          tasks: stage1.length ? stage1 : stage2,
          followUps: (task) => (task.kind === 'stage1' ? stage2 : []),
          onProgress: onStep,
          label: taskLabel,
        })
      ).flatMap(({ result }) => (result ? [result] : []));
  bar.finish();

  outcomes.sort((a, b) => a.seed - b.seed || a.recipe.localeCompare(b.recipe));
  const files = await writeResults(out, outcomes, metrics, config, { ...options, stage1Seed });
  const table = resultsTable(outcomes);
  return { outcomes, table, files };
}

async function runInline(tasks: Task[], ctx: TaskContext): Promise<Stage2Outcome[]> {
  const outcomes: Stage2Outcome[] = [];
  for (const task of tasks) {
    const outcome = await runTask(task, ctx);
    if (outcome) outcomes.push(outcome);
  }
  return outcomes;
}

/** Accuracy in [0, 1] (@mllm/eval reports percent). */
function accuracyOf(outcome: Stage2Outcome, language: string): number {
  const entry = language === 'overall' ? outcome.report.overall : outcome.report.byLanguage?.[language];
  return entry ? entry.accuracy / 100 : NaN;
}

export function resultsTable(outcomes: Stage2Outcome[]): string {
  const rows = [...LANGUAGES, 'overall'].map((language) => {
    const cell = (recipe: string) => {
      const values = outcomes
        .filter((o) => o.recipe === recipe)
        .map((o) => accuracyOf(o, language));
      return formatPercent(values);
    };
    return [language, cell('baseline'), cell('parrot')];
  });
  const seeds = new Set(outcomes.map((o) => o.seed)).size;
  return `Accuracy (%) on the held-out MMMB-format set, mean ± std over ${seeds} seed(s)\n\n` +
    markdownTable(['language', 'baseline (LLaVA recipe)', 'Parrot (ParrotMoE)'], rows);
}

async function writeResults(
  out: string,
  outcomes: Stage2Outcome[],
  metrics: string[],
  config: ExampleConfig,
  options: RunOptions & { stage1Seed: number },
): Promise<string[]> {
  const stage1Seed = options.stage1Seed;
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await writeFile(`${out}/${name}`, text);
    files.push(`${out}/${name}`);
  };
  await write('metrics.jsonl', metrics.join(''));
  await write('results.json', `${JSON.stringify({ config, seeds: options.seeds, backend: options.backend, outcomes }, null, 2)}\n`);

  const barRows = LANGUAGES.flatMap((language) =>
    (['baseline', 'parrot'] as const).map((recipe) => {
      const values = outcomes.filter((o) => o.recipe === recipe).map((o) => accuracyOf(o, language));
      const { mean, std } = meanStd(values);
      return { group: language, series: recipe, value: mean, low: Math.max(0, mean - std), high: Math.min(1, mean + std) };
    }),
  );
  await write('accuracy-by-language.svg', await renderSvg(groupedBarSpec({ title: 'Held-out accuracy by language (mean ± std over seeds)', rows: barRows, yTitle: 'accuracy', yDomain: [0, 1] })));

  const routing = outcomes.filter((o) => o.recipe === 'parrot');
  const heatRows = LANGUAGES.flatMap((language) => {
    const perSeed = routing.map((o) => o.routingByLanguage[language]).filter((v): v is number[] => !!v);
    if (!perSeed.length) return [];
    return perSeed[0].map((_, e) => ({ row: language, column: `expert ${e}`, value: perSeed.reduce((s, v) => s + v[e], 0) / perSeed.length }));
  });
  if (heatRows.length) {
    await write('router-weights.svg', await renderSvg(heatmapSpec({ title: 'ParrotMoE routing weight per language (held-out prompts)', rows: heatRows, rowTitle: 'language', columnTitle: 'expert', valueTitle: 'weight' })));
  }

  const lossRows: Array<{ x: number; value: number; series: string }> = [];
  const counters = new Map<string, number>();
  for (const line of metrics) {
    const m = JSON.parse(line) as { task: string; recipe: string; seed: number; loss: number };
    if (m.recipe !== 'stage1' && m.seed !== options.seeds[0]) continue;
    const series = m.recipe;
    const x = (counters.get(series) ?? 0) + 1;
    counters.set(series, x);
    lossRows.push({ x: series === 'stage1' ? x : config.stage1Steps + x, value: m.loss, series });
  }
  await write('loss.svg', await renderSvg(lineSpec({ title: `Training loss (seed ${options.seeds[0]})`, rows: lossRows, xTitle: 'step', yTitle: 'loss' })));

  const routingTable = heatRows.length
    ? '\n\nMean ParrotMoE routing weights per language (held-out prompts, averaged over seeds)\n\n' +
      markdownTable(['language', ...heatRows.filter((r) => r.row === 'en').map((r) => r.column)],
        LANGUAGES.filter((l) => heatRows.some((r) => r.row === l)).map((l) => [l, ...heatRows.filter((r) => r.row === l).map((r) => r.value)]))
    : '';
  await write(
    'results.md',
    `# parrot-multilingual results\n\nBackend: ${options.backend}; stage 1 (shared, English only, seed ${stage1Seed}): ` +
      `${config.stage1Steps} steps; stage 2 (English-heavy mix): ${config.stage2Steps} steps per recipe and seed ` +
      `(seeds ${options.seeds.join(', ')}); batch ${config.batchSize}; question kinds: ${config.questionKinds.join(', ')}; option order: ${config.optionOrder}.\n\n` +
      `${resultsTable(outcomes)}${routingTable}\n\nPlots: accuracy-by-language.svg, router-weights.svg, loss.svg\n`,
  );
  return files;
}
