/**
 * `pnpm --filter @mllm-example/parrot-multilingual start [--backend B] [--steps N] [--seeds 1,2,3] [--out DIR] [--smoke]`
 * (`--steps` sets the steps of each stage; `--workers K`, `--per-language Q` also accepted).
 */
import { announceBackend, parseExampleFlags } from '@mllm-example/common';
import { runExample } from './run-example.js';

const flags = parseExampleFlags(process.argv.slice(2), { out: 'runs/parrot-multilingual', seeds: [1, 2, 3], extraFlags: ['workers', 'per-language'] });
await announceBackend(flags.backend);
const steps = flags.smoke ? 2 : flags.steps;
const started = performance.now();
const result = await runExample({
  backend: flags.backend,
  seeds: flags.smoke ? flags.seeds.slice(0, 1) : flags.seeds,
  outDir: flags.out,
  config: steps ? { stage1Steps: steps, stage2Steps: steps } : {},
  perLanguage: flags.extra['per-language'] ? Number(flags.extra['per-language']) : flags.smoke ? 2 : undefined,
  workers: flags.extra.workers !== undefined ? Number(flags.extra.workers) : undefined,
});
console.log(`\n${result.table}\n`);
console.log(`Wrote ${result.files.join(', ')} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
