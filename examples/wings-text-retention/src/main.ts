/**
 * `pnpm --filter @mllm-example/wings-text-retention start [--backend B] [--steps N] [--seeds 1,2,3] [--out DIR] [--smoke]`
 * (`--steps` sets the steps of multimodal stage 2; `--workers K` also accepted, 0 = inline).
 */
import { announceBackend, parseExampleFlags } from '@mllm-example/common';
import { runExample } from './run-example.js';

const flags = parseExampleFlags(process.argv.slice(2), { out: 'runs/wings-text-retention', seeds: [1, 2, 3], extraFlags: ['workers'] });
await announceBackend(flags.backend);
const smoke = { pretrainSteps: 2, stage1Steps: 2, stage2Steps: 2, heldOutText: 8, heldOutImageVariants: 1 };
const result = await runExample({
  backend: flags.backend,
  seeds: flags.smoke ? flags.seeds.slice(0, 1) : flags.seeds,
  outDir: flags.out,
  config: { ...(flags.smoke ? smoke : {}), ...(flags.steps ? { stage2Steps: flags.steps } : {}) },
  workers: flags.extra.workers !== undefined ? Number(flags.extra.workers) : undefined,
});
console.log(`\n${result.table}\n`);
console.log(`Wrote ${result.files.join(', ')} in ${result.seconds.toFixed(0)} s`);
