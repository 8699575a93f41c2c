/**
 * `pnpm --filter @mllm-example/vpgc-demonstrative start [--backend B] [--steps N] [--seeds 1,2] [--out DIR] [--smoke]`
 * (`--steps` sets the steps of each stage; `--questions Q` the held-out questions per set; `--workers K` worker threads, 0 = inline).
 */
import { announceBackend, parseExampleFlags } from '@mllm-example/common';
import { runExample } from './run-example.js';
import type { ExampleConfig } from './recipe.js';

const flags = parseExampleFlags(process.argv.slice(2), { out: 'runs/vpgc-demonstrative', seeds: [1, 2], extraFlags: ['questions', 'workers'] });
await announceBackend(flags.backend);
const config: Partial<ExampleConfig> = {};
const steps = flags.smoke ? 2 : flags.steps;
if (steps) Object.assign(config, { stage1Steps: steps, stage2Steps: steps });
if (flags.extra.questions !== undefined) {
  const q = Number(flags.extra.questions);
  if (!Number.isInteger(q) || q <= 0) throw new Error(`--questions must be a positive integer, got '${flags.extra.questions}'`);
  config.evalQuestions = q;
} else if (flags.smoke) config.evalQuestions = 2;
const workers = flags.extra.workers !== undefined ? Number(flags.extra.workers) : undefined;
if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0)) throw new Error(`--workers must be an integer ≥ 0, got '${flags.extra.workers}'`);
const started = performance.now();
const result = await runExample({ backend: flags.backend, seeds: flags.smoke ? flags.seeds.slice(0, 1) : flags.seeds, outDir: flags.out, config, workers });
console.log(`\n${result.table}\n`);
console.log(`Wrote ${result.files.join(', ')} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
