/**
 * Orchestrates the Wings example: text pretraining per seed, then the LLaVA-style and the Wings
 * fine-tuning of each seed (on worker threads or inline), one progress bar, and the outputs:
 * results.md / results.json / metrics.jsonl / SVG plots / checkpoint/ (host + Wings adapter).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { ProgressBar, toJsonLine } from '@mllm/train';
import { formatPercent, groupedBarSpec, heatmapSpec, lineSpec, markdownTable, meanStd, renderSvg, runOnWorkerPool, type ExampleRunOptions } from '@mllm-example/common';
import { DEFAULT_CONFIG, RECIPES, heldOutImagesFor, heldOutTextFor, type ExampleConfig, type RouterBlend, type StepReport } from './recipe.js';
import { runTask, taskLabel, type Outcome, type Task, type TaskContext } from './tasks.js';

export type RunOptions = ExampleRunOptions<ExampleConfig>;

export interface RunResult {
  outcomes: Outcome[];
  table: string;
  files: string[];
  seconds: number;
}

const RECIPE_TITLES: Record<Outcome['recipe'], string> = {
  pretrained: 'after text pretraining (before multimodal)',
  llava: 'LLaVA-style fine-tuning (LLM + projector)',
  projector: 'control: projector only (LLM frozen, no Wings)',
  wings: 'Wings (learners + router + projector, LLM frozen)',
};

export async function runExample(options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const config: ExampleConfig = { ...DEFAULT_CONFIG, ...options.config };
  if (!options.seeds.length) throw new Error('runExample: seeds must be a non-empty list');
  const out = options.outDir;
  await mkdir(out, { recursive: true });

  const perSeed = config.pretrainSteps + RECIPES.length * (config.stage1Steps + config.stage2Steps);
  const bar = new ProgressBar(options.seeds.length * perSeed, { stream: options.stream, label: 'wings-text-retention', logEvery: 25 });
  const metrics: string[] = [];
  let done = 0;
  const onStep = (task: Task, report: StepReport) => {
    done++;
    metrics.push(toJsonLine({ task: taskLabel(task), seed: task.seed, recipe: task.kind === 'finetune' ? task.recipe : 'pretrain', ...report }));
    bar.update({ step: done, loss: report.loss, lr: report.lr, run: taskLabel(task) }); // lines from parallel runs say whose they are
  };

  const context: Omit<TaskContext, 'onStep'> = { backend: options.backend, config, outDir: out };
  const pretrain = options.seeds.map((seed): Task => ({ kind: 'pretrain', seed }));
  const finetuneFor = (seed: number): Task[] =>
    RECIPES.map((recipe) => ({ kind: 'finetune', seed, recipe, saveCheckpoint: seed === options.seeds[0], routerExample: seed === options.seeds[0] }));
  const workers = Math.max(0, Math.min(options.workers ?? Math.min(2, cpus().length), options.seeds.length * RECIPES.length));
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
  for (const seed of options.seeds) await rm(`${out}/pretrained-seed${seed}.safetensors`, { force: true });

  const order = ['pretrained', ...RECIPES];
  outcomes.sort((a, b) => a.seed - b.seed || order.indexOf(a.recipe) - order.indexOf(b.recipe));
  const seconds = (performance.now() - started) / 1000;
  const table = resultsTable(outcomes, config);
  const files = await writeResults(out, outcomes, metrics, config, options, table, seconds);
  return { outcomes, table, files, seconds };
}

async function runInline(pretrain: Task[], finetuneFor: (seed: number) => Task[], ctx: TaskContext): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  for (const task of pretrain) {
    outcomes.push(await runTask(task, ctx));
    for (const t of finetuneFor(task.seed)) outcomes.push(await runTask(t, ctx));
  }
  return outcomes;
}

const valuesOf = (outcomes: Outcome[], recipe: Outcome['recipe'], key: 'textAccuracy' | 'imageAccuracy') =>
  outcomes.filter((o) => o.recipe === recipe).map((o) => o[key]);

export function resultsTable(outcomes: Outcome[], config: ExampleConfig): string {
  const seeds = new Set(outcomes.map((o) => o.seed)).size;
  const cell = (values: number[]) => (values.length ? formatPercent(values) : 'n/a');
  const rows = (['pretrained', ...RECIPES] as const).map((recipe) => [
    RECIPE_TITLES[recipe],
    cell(valuesOf(outcomes, recipe, 'textAccuracy')),
    cell(valuesOf(outcomes, recipe, 'imageAccuracy')),
  ]);
  return `Held-out accuracy (%), mean ± std over ${seeds} seed(s); chance = 25.0 ` +
    `(${heldOutTextFor(config).length} text-only questions, ${heldOutImagesFor(config).length} image questions)\n\n` +
    markdownTable(['model', 'text-only (find the letter)', 'image QA (colour)'], rows);
}

function blendSpec(blend: RouterBlend, title: string) {
  const rows = blend.layers.flatMap((layer, i) =>
    blend.tokens.map((token, t) => ({ row: `layer ${layer}`, column: `${String(t).padStart(2, '0')} ${token}`, value: blend.visual[i][t] })),
  );
  return heatmapSpec({ title, rows, rowTitle: 'decoder layer', columnTitle: 'token', valueTitle: 'w_visual (w_text = 1 − w_visual)' });
}

async function writeResults(
  out: string,
  outcomes: Outcome[],
  metrics: string[],
  config: ExampleConfig,
  options: RunOptions,
  table: string,
  seconds: number,
): Promise<string[]> {
  const files: string[] = [];
  const write = async (name: string, text: string) => {
    await writeFile(`${out}/${name}`, text);
    files.push(`${out}/${name}`);
  };
  await write('metrics.jsonl', metrics.join(''));
  await write('results.json', `${JSON.stringify({ config, seeds: options.seeds, backend: options.backend, seconds, outcomes }, null, 2)}\n`);

  const barRows = (['textAccuracy', 'imageAccuracy'] as const).flatMap((key) =>
    (['pretrained', ...RECIPES] as const).flatMap((recipe) => {
      const values = valuesOf(outcomes, recipe, key);
      if (!values.length) return [];
      const { mean, std } = meanStd(values);
      return [{ group: key === 'textAccuracy' ? 'text-only (held out)' : 'image QA (held out)', series: recipe, value: mean, low: Math.max(0, mean - std), high: Math.min(1, mean + std) }];
    }),
  );
  await write('accuracy.svg', await renderSvg(groupedBarSpec({ title: 'Held-out accuracy (mean ± std over seeds)', rows: barRows, yTitle: 'accuracy', yDomain: [0, 1] })));

  const lossRows: Array<{ x: number; value: number; series: string }> = [];
  const counters = new Map<string, number>();
  for (const line of metrics) {
    const m = JSON.parse(line) as { recipe: string; seed: number; loss: number };
    if (m.seed !== options.seeds[0]) continue;
    const x = (counters.get(m.recipe) ?? 0) + 1;
    counters.set(m.recipe, x);
    lossRows.push({ x: m.recipe === 'pretrain' ? x : config.pretrainSteps + x, value: m.loss, series: m.recipe });
  }
  await write('loss.svg', await renderSvg(lineSpec({ title: `Training loss (seed ${options.seeds[0]})`, rows: lossRows, xTitle: 'step', yTitle: 'loss' })));

  const examples = outcomes.find((o) => o.routerExamples)?.routerExamples ?? [];
  const [imageBlend, textBlend] = examples;
  if (imageBlend) await write('router-blend-image.svg', await renderSvg(blendSpec(imageBlend, `Wings router blend per token, image prompt (seed ${options.seeds[0]})`)));
  if (textBlend) await write('router-blend-text.svg', await renderSvg(blendSpec(textBlend, `Wings router blend per token, text-only prompt "${textBlend.prompt}" (seed ${options.seeds[0]})`)));

  const meanVisual = (blend: RouterBlend, select: (token: string) => boolean) =>
    blend.layers.map((layer, i) => {
      const values = blend.visual[i].filter((_, t) => select(blend.tokens[t]));
      return [`layer ${layer}`, values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN] as [string, number];
    });
  const blendTable = imageBlend && textBlend
    ? '\n\nMean router weight w_visual (seed ' + options.seeds[0] + '; w_text = 1 − w_visual)\n\n' +
      markdownTable(['layer', 'image prompt: image tokens', 'image prompt: text tokens', 'text-only prompt'],
        imageBlend.layers.map((_, i) => [
          meanVisual(imageBlend, (t) => t.startsWith('img'))[i][0],
          meanVisual(imageBlend, (t) => t.startsWith('img'))[i][1],
          meanVisual(imageBlend, (t) => !t.startsWith('img'))[i][1],
          meanVisual(textBlend, () => true)[i][1],
        ]))
    : '';
  const timing = '\n\nSeconds per task: ' +
    outcomes.map((o) => `seed ${o.seed} ${o.recipe} ${o.seconds.toFixed(0)}`).join(', ') + `; whole run ${seconds.toFixed(0)} s.`;
  await write(
    'results.md',
    `# wings-text-retention results\n\nBackend: ${options.backend} (ran on ${[...new Set(outcomes.map((o) => o.backend))].join(', ')}); seeds: ${options.seeds.join(', ')}; ` +
      `text pretraining ${config.pretrainSteps} steps; multimodal stage 1 ${config.stage1Steps} + stage 2 ${config.stage2Steps} steps per recipe; batch ${config.batchSize}.\n\n` +
      `${table}${blendTable}${timing}\n\nPlots: accuracy.svg, loss.svg, router-blend-image.svg, router-blend-text.svg. ` +
      `Checkpoint (seed ${options.seeds[0]}, Wings): checkpoint/host (saveHostModel), checkpoint/wings-adapter (saveAdapter).\n`,
  );
  return files;
}
