/**
 * `pnpm --filter @mllm-example/vpgc-demonstrative start [--budget default|full] [--backend B] [--steps N] [--seeds 1,2] [--out DIR] [--smoke]`
 * (`--steps` sets the steps of every stage, for a quick look; `--questions Q` the held-out questions per set; `--workers K` worker threads, 0 = inline;
 * `--reanalyse RUN_DIR` recomputes a finished run's results.md and dose-response.svg from its results.json).
 */
import { announceBackend, parseExampleFlags } from '@mllm-example/common';
import { BUDGETS, reanalyseRun, runExample, type BudgetName } from './run-example.js';
import type { ExampleConfig } from './recipe.js';

const flags = parseExampleFlags(process.argv.slice(2), { out: 'runs/vpgc-demonstrative', seeds: [], extraFlags: ['budget', 'questions', 'workers', 'reanalyse'] });
if (flags.extra.reanalyse !== undefined) {
  // Recompute a finished run's tables from its results.json (nothing is trained).
  const analysis = await reanalyseRun(flags.extra.reanalyse);
  console.log(`${analysis.table}\n\nRewrote ${flags.extra.reanalyse}/results.md and dose-response.svg`);
  process.exit(0);
}
const budgetName = (flags.extra.budget ?? 'default') as BudgetName;
if (!(budgetName in BUDGETS)) throw new Error(`--budget must be one of ${Object.keys(BUDGETS).join(', ')}, got '${budgetName}'`);
const budget = BUDGETS[budgetName];
await announceBackend(flags.backend);
const config: Partial<ExampleConfig> = { ...budget.config };
const steps = flags.smoke ? 2 : flags.steps;
if (steps) Object.assign(config, { stage1Steps: steps, stage2Steps: steps, sdtSteps: steps }); // --steps overrides the budget's steps
if (flags.extra.questions !== undefined) {
  const q = Number(flags.extra.questions);
  if (!Number.isInteger(q) || q <= 0) throw new Error(`--questions must be a positive integer, got '${flags.extra.questions}'`);
  Object.assign(config, { regionQuestions: q, zeroShotQuestions: q });
} else if (flags.smoke) Object.assign(config, { regionQuestions: 3, zeroShotQuestions: 2 });
const workers = flags.extra.workers !== undefined ? Number(flags.extra.workers) : undefined;
if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0)) throw new Error(`--workers must be an integer ≥ 0, got '${flags.extra.workers}'`);
const seeds = flags.seeds.length ? flags.seeds : [...budget.seeds];
const started = performance.now();
const result = await runExample({
  backend: flags.backend,
  budget: flags.smoke ? 'smoke' : flags.steps ? `${budgetName}-steps${flags.steps}` : budgetName,
  seeds: flags.smoke ? seeds.slice(0, 1) : seeds,
  outDir: flags.out,
  config,
  workers,
});
console.log(`\n${result.table}\n`);
console.log(`Wrote ${result.files.join(', ')} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
