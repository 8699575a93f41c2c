/**
 * `pnpm --filter @mllm-example/wings-text-retention start [--budget default|full] [--backend B] [--steps N] [--seeds 1,2,3] [--out DIR] [--smoke]`
 * (`--steps` sets the steps of multimodal stage 2, for a quick look; `--workers K` also accepted, 0 = inline).
 */
import { announceBackend, parseExampleFlags } from '@mllm-example/common';
import { BUDGETS, runExample, type BudgetName } from './run-example.js';

const flags = parseExampleFlags(process.argv.slice(2), { out: 'runs/wings-text-retention', seeds: [], extraFlags: ['budget', 'workers'] });
const budgetName = (flags.extra.budget ?? 'default') as BudgetName;
if (!(budgetName in BUDGETS)) throw new Error(`--budget must be one of ${Object.keys(BUDGETS).join(', ')}, got '${budgetName}'`);
await announceBackend(flags.backend);
const smoke = { pretrainSteps: 2, stage1Steps: 2, stage2Steps: 2, heldOutText: 8, heldOutImageVariants: 1 };
const seeds = flags.seeds.length ? flags.seeds : [...BUDGETS[budgetName].seeds];
const result = await runExample({
  backend: flags.backend,
  budget: flags.smoke ? 'smoke' : flags.steps ? `${budgetName}-steps${flags.steps}` : budgetName, // --steps overrides the budget's steps
  seeds: flags.smoke ? seeds.slice(0, 1) : seeds,
  outDir: flags.out,
  config: { ...(flags.smoke ? smoke : {}), ...(flags.steps ? { stage2Steps: flags.steps } : {}) },
  workers: flags.extra.workers !== undefined ? Number(flags.extra.workers) : undefined,
});
console.log(`\n${result.table}\n`);
console.log(`Wrote ${result.files.join(', ')} in ${result.seconds.toFixed(0)} s`);
