/**
 * Orchestrates the VPG-C example: one task per seed (stage 1 host + VPG, stage 2 VPG-C alone,
 * held-out multiple-choice scoring with VPG-C attached and removed), on worker threads or inline;
 * one progress bar over all training steps and scored questions; writes metrics.jsonl,
 * results.json, results.md, SVG plots and (first seed) the checkpoint.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { ProgressBar } from '@mllm/train';
import { formatPercent, groupedBarSpec, lineSpec, markdownTable, meanStd, renderSvg, runOnWorkerPool, type ExampleRunOptions } from '@mllm-example/common';
import { DEFAULT_CONFIG, type ExampleConfig } from './recipe.js';
import { EVAL_SETS, runSeed, type Condition, type EvalSet, type Outcome, type SeedProgress, type SeedResult, type SeedTask } from './seed-task.js';

export { EVAL_SETS, type Condition, type EvalSet, type Outcome };

export type RunOptions = ExampleRunOptions<ExampleConfig>;

export interface RunResult {
  outcomes: Outcome[];
  table: string;
  files: string[];
  /** Wall-clock seconds of the whole run, and per-stage seconds summed over seeds. */
  seconds: { total: number; stage1: number; stage2: number; scoring: number };
  backend: string;
}

export async function runExample(options: RunOptions): Promise<RunResult> {
  const config: ExampleConfig = { ...DEFAULT_CONFIG, ...options.config };
  const out = options.outDir;
  await mkdir(out, { recursive: true });
  const total = options.seeds.length * (config.stage1Steps + config.stage2Steps + 2 * 2 * config.evalQuestions);
  const bar = new ProgressBar(total, { stream: options.stream, label: 'vpgc-demonstrative', logEvery: 25 });
  bar.start();
  let done = 0;
  const lastLoss = new Map<number, number>(); // per seed: parallel seeds interleave
  const onProgress = (task: SeedTask, p: SeedProgress) => {
    if (p.kind === 'step') lastLoss.set(task.seed, p.loss);
    // parallel seeds share the bar: each line says whose loss it shows
    bar.update({ step: ++done, loss: lastLoss.get(task.seed) ?? NaN, lr: p.kind === 'step' ? p.lr : undefined, run: `seed ${task.seed}` });
  };
  const started = performance.now();
  const tasks: SeedTask[] = options.seeds.map((seed, i) => ({ seed, backend: options.backend, config, outDir: out, saveCheckpoint: i === 0 }));
  const workers = Math.max(0, Math.min(options.workers ?? Math.min(2, cpus().length), tasks.length));
  const results = workers === 0 ? await runInline(tasks, onProgress) : (
          await runOnWorkerPool<SeedTask, SeedProgress, SeedResult>({
            entry: new URL('./worker-entry.mjs', import.meta.url),
            workerData: null,
            count: workers,
            tasks,
            onProgress: (task, progress) => onProgress(task, progress),
            label: (task) => `seed ${task.seed}`,
          })
        ).map(({ result }) => result);
  bar.finish();
  results.sort((a, b) => a.seed - b.seed);
  const outcomes = results.flatMap((r) => r.outcomes);
  const sum = (key: 'stage1' | 'stage2' | 'scoring') => results.reduce((s, r) => s + r.seconds[key], 0);
  const seconds = { total: (performance.now() - started) / 1000, stage1: sum('stage1'), stage2: sum('stage2'), scoring: sum('scoring') };
  const backend = results[0]?.backend ?? String(options.backend);
  const metrics = results.flatMap((r) => r.metrics);
  const files = await writeResults(out, outcomes, metrics, config, options, backend, seconds, workers);
  return { outcomes, table: resultsTable(outcomes), files, seconds, backend };
}

async function runInline(tasks: SeedTask[], onProgress: (task: SeedTask, p: SeedProgress) => void): Promise<SeedResult[]> {
  const results: SeedResult[] = [];
  for (const task of tasks) results.push(await runSeed(task, (p) => onProgress(task, p)));
  return results;
}

function valuesOf(outcomes: Outcome[], evalSet: EvalSet, condition: Condition, key: 'accuracyMean' | 'accuracySum' = 'accuracyMean'): number[] {
  return outcomes.filter((o) => o.evalSet === evalSet && o.condition === condition).map((o) => o.result[key]);
}

export function resultsTable(outcomes: Outcome[]): string {
  const seeds = [...new Set(outcomes.map((o) => o.seed))];
  const rows: Array<Array<string | number>> = [];
  for (const evalSet of Object.keys(EVAL_SETS) as EvalSet[]) {
    for (const key of ['accuracyMean', 'accuracySum'] as const) {
      const without = valuesOf(outcomes, evalSet, 'without VPG-C', key);
      const withVpgc = valuesOf(outcomes, evalSet, 'with VPG-C', key);
      const delta = withVpgc.map((v, i) => v - without[i]);
      const chance = evalSet === 'what-changed' ? 1 / 4 : 1 / 3;
      rows.push([
        `${EVAL_SETS[evalSet]}, ${key === 'accuracyMean' ? 'mean log-lik' : 'sum log-lik'}`,
        (100 * chance).toFixed(1),
        formatPercent(without),
        formatPercent(withVpgc),
        formatPercent(delta),
      ]);
    }
  }
  const n = outcomes[0]?.result.questions ?? 0;
  return `Accuracy (%) on ${n} held-out questions per set, mean ± std over ${seeds.length} seed(s) (${seeds.join(', ')}); ` +
    'same frozen model, VPG-C attached vs removed\n\n' +
    markdownTable(['evaluation set, option ranking', 'chance', 'without VPG-C', 'with VPG-C', 'Δ (with − without)'], rows);
}

function perSeedTable(outcomes: Outcome[]): string {
  const seeds = [...new Set(outcomes.map((o) => o.seed))];
  const rows = seeds.flatMap((seed) =>
    (Object.keys(EVAL_SETS) as EvalSet[]).map((evalSet) => {
      const get = (c: Condition) => outcomes.find((o) => o.seed === seed && o.evalSet === evalSet && o.condition === c)!.result;
      const [without, withVpgc] = [get('without VPG-C'), get('with VPG-C')];
      return [
        seed, evalSet, 100 * without.accuracyMean, 100 * withVpgc.accuracyMean, without.correctLogLik.toFixed(4), withVpgc.correctLogLik.toFixed(4),
        without.pickedCounts.join(' / '), withVpgc.pickedCounts.join(' / '),
      ];
    }),
  );
  return markdownTable(
    ['seed', 'set', 'acc. without (%)', 'acc. with (%)', 'correct-option log-lik/token without', 'with', 'picks per option position without', 'with'],
    rows,
  );
}

async function writeResults(
  out: string,
  outcomes: Outcome[],
  metrics: string[],
  config: ExampleConfig,
  options: RunOptions,
  backend: string,
  seconds: RunResult['seconds'],
  workers: number,
): Promise<string[]> {
  const files: string[] = [];
  const write = async (name: string, text: string | Uint8Array) => {
    await writeFile(`${out}/${name}`, text);
    files.push(`${out}/${name}`);
  };
  await write('metrics.jsonl', metrics.join(''));
  await write('results.json', `${JSON.stringify({ config, seeds: options.seeds, backend, seconds, outcomes }, null, 2)}\n`);

  const barRows = (Object.keys(EVAL_SETS) as EvalSet[]).flatMap((evalSet) =>
    (['without VPG-C', 'with VPG-C'] as const).map((condition) => {
      const { mean, std } = meanStd(valuesOf(outcomes, evalSet, condition));
      return { group: evalSet, series: condition, value: mean, low: Math.max(0, mean - std), high: Math.min(1, mean + std) };
    }),
  );
  await write('accuracy.svg', await renderSvg(groupedBarSpec({
    title: 'Held-out accuracy (mean ± std over seeds)', rows: barRows, yTitle: 'accuracy', yDomain: [0, 1],
  })));

  const lossRows: Array<{ x: number; value: number; series: string }> = [];
  for (const line of metrics) {
    const m = JSON.parse(line) as { kind: string; seed: number; stage: string; step: number; loss: number };
    if (m.kind !== 'step') continue;
    lossRows.push({ x: m.stage === 'stage1' ? m.step : config.stage1Steps + m.step, value: m.loss, series: `seed ${m.seed}` });
  }
  await write('loss.svg', await renderSvg(lineSpec({
    title: `Training loss (VPG-C alone from step ${config.stage1Steps + 1})`,
    rows: lossRows, xTitle: 'step', yTitle: 'loss',
  })));

  await write(
    'results.md',
    `# vpgc-demonstrative results\n\nBackend: ${backend}; seeds: ${options.seeds.join(', ')}; batch ${config.batchSize}; ` +
      `stage 1 (host + Q-Former VPG, single-image captions/QA): ${config.stage1Steps} steps; ` +
      `stage 2 (VPG-C alone, synthetic which-differs): ${config.stage2Steps} steps.\n` +
      `Wall time: ${seconds.total.toFixed(0)} s on ${workers === 0 ? 'this thread' : `${workers} worker thread(s)`}; summed over seeds: ` +
      `stage 1 ${seconds.stage1.toFixed(0)} s, stage 2 ${seconds.stage2.toFixed(0)} s, scoring ${seconds.scoring.toFixed(0)} s.\n\n` +
      `${resultsTable(outcomes)}\n\nPer seed (mean log-likelihood ranking; for which-differs the option position is the image index)\n\n${perSeedTable(outcomes)}\n\n` +
      'Plots: accuracy.svg, loss.svg. Checkpoint (first seed): checkpoint/ (host + VPG, `loadHostModel` with a `QFormerVPG` built from vpg-config.json) and checkpoint/vpgc-adapter/ (`loadAdapterFiles` onto the restored host).\n',
  );
  return files;
}
