/**
 * `pnpm --filter @mllm-example/parrot-multilingual start [--budget default|full] [--backend B] [--steps N] [--seeds 1,2,3] [--out DIR] [--smoke]`
 * (`--steps` sets the steps of every stage, for a quick look; `--workers K`, `--per-language Q` also accepted).
 */
import { announceBackend, parseExampleFlags } from '@mllm-example/common';
import { BUDGETS, runExample, type BudgetName } from './run-example.js';

const flags = parseExampleFlags(process.argv.slice(2), { out: 'runs/parrot-multilingual', seeds: [], extraFlags: ['budget', 'workers', 'per-language'] });
const budgetName = (flags.extra.budget ?? 'default') as BudgetName;
if (!(budgetName in BUDGETS)) throw new Error(`--budget must be one of ${Object.keys(BUDGETS).join(', ')}, got '${budgetName}'`);
const budget = BUDGETS[budgetName];
await announceBackend(flags.backend);
const steps = flags.smoke ? 2 : flags.steps;
const started = performance.now();
const result = await runExample({
  backend: flags.backend,
  budget: flags.smoke ? 'smoke' : flags.steps ? `${budgetName}-steps${flags.steps}` : budgetName, // --steps overrides the budget's steps
  seeds: flags.seeds.length ? (flags.smoke ? flags.seeds.slice(0, 1) : flags.seeds) : flags.smoke ? [1] : [...budget.seeds],
  outDir: flags.out,
  config: steps ? { stage0Steps: steps, stage1Steps: steps, stage2Steps: steps } : { ...budget.config },
  perLanguage: flags.extra['per-language'] ? Number(flags.extra['per-language']) : flags.smoke ? 2 : budget.perLanguage,
  workers: flags.extra.workers !== undefined ? Number(flags.extra.workers) : undefined,
});
console.log(`\n${result.table}\n`);
console.log(`Wrote ${result.files.join(', ')} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
