/**
 * `mllm-eval`: evaluate a model on MMMB / multilingual MMBench TSVs.
 *
 *   mllm-eval --model <checkpoint-dir | model.mjs> --data <tsv...> --out <dir> [options]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { PostprocessMode } from './answer-extraction.js';
import { ensureBackend } from './backend.js';
import { BadRowError, BenchmarkFormatError } from './bad-row.js';
import { loadEvalModel, type HostLoaderImporter } from './eval-model.js';
import type { ScoreTarget } from './host-model-adapter.js';
import type { PretrainedLoaderImporter } from './pretrained-adapter.js';
import { evaluate, type DatasetSpec, type RowResult } from './evaluate.js';
import { isKnownLanguage, LANGUAGES, normalizeLanguage } from './languages.js';
import { createProgress, type ProgressStream } from './progress.js';
import type { InstructionRule } from './prompt.js';
import { comparisonTable, reportToCsv, reportToJson, reportToMarkdown } from './report.js';
import { withoutTfjsHints, markCpuHintShown } from './tfjs-quiet.js';
import { readTsvRecords, TsvSyntaxError } from './tsv-source.js';
import { predictionsToTsv } from './tsv-writer.js';

export const USAGE = `Usage: mllm-eval --model <checkpoint|module.mjs> --data <file.tsv> [--data …] --out <dir> [options]

Evaluates a multimodal model on multiple-choice TSVs (MMMB, multilingual MMBench).

Required:
  --model <spec>        a checkpoint directory: a saved @mllm host model (needs @mllm/models) or one
                        in the authors' layout, LLaVA-style HF, Parrot, Wings or Cheetah (needs
                        @mllm/pretrained); or a .js/.mjs/.cjs module exporting an EvalModel
                        (default export, createModel or model)
  --data <tsv>          benchmark file; repeatable; also accepted as positional arguments.
                        Prefix with a language to set the language of rows without one: pt=mmmb_pt.tsv
  --out <dir>           output directory (report.md, report.csv, report.json, comparison.md,
                        predictions.jsonl, <file>_predictions.tsv per data file)
Options:
  --predict-only        predict without scoring (a test split without answers): writes
                        <file>_predictions.tsv (the file's columns without image, plus prediction),
                        predictions.jsonl and report.json (row counts, skipped rows)
  --language <code>     default language of rows without a language column (en zh/cn pt ar tr ru)
  --circular <mode>     auto (default: circular when rotated copies exist) | on | off
  --benchmark <name>    auto (default: MMBench if circular else MMMB) | mmmb | mmbench
  --on-bad-row <mode>   error (default) | skip (skipped rows are counted in the report)
  --postprocess <mode>  all (default) | reference (English prompts only, as in Parrot) | none
  --instruction <rule>  row-language (default) | reference (dataset-name suffix, as in Parrot)
  --limit <n>           evaluate at most n rows per file
  --max-new-tokens <n>  generation budget for checkpoint models (default 64)
  --score-target <t>    what the log-likelihood fallback scores for checkpoint models:
                        letter (default) | text | letter-text
  --vision-tower <dir>  the vision tower's directory, for an authors' checkpoint whose config.json
                        names a tower path from the authors' machine (mm_vision_tower)
  --tokenizer-dir <dir> the directory with tokenizer.json (+ tokenizer_config.json), for an authors'
                        checkpoint that keeps its tokenizer elsewhere (e.g. Wings-LLaMA: the base LLM's)
  --backend <name>      cpu | wasm | webgpu (default: what the model registered, else cpu)
  --no-progress         no progress output
  -h, --help            this help
`;

/** Streams and environment of a CLI run (injectable for tests). */
export interface CliIo {
  readonly stdout: ProgressStream;
  readonly stderr: ProgressStream;
  /** Overrides how `@mllm/models`' `loadHostModel` is looked up. */
  readonly hostLoader?: HostLoaderImporter;
  /** Overrides how `@mllm/pretrained`'s `fromPretrained` is looked up. */
  readonly pretrainedLoader?: PretrainedLoaderImporter;
  /** Clock for the progress display. */
  readonly now?: () => number;
}

class UsageError extends Error {}

const KNOWN_LANGUAGES = LANGUAGES.map((code) => (code === 'zh' ? 'zh (cn)' : code)).join(', ');

/**
 * `lang=path` or `path`. A prefix that looks like a language code but is not a supported one is an
 * error naming the known codes, unless a file of that exact name exists (a path containing `=`).
 */
function parseDataArgument(argument: string): { path: string; language?: string } {
  const match = /^([A-Za-z][A-Za-z_-]{1,9})=(.+)$/.exec(argument);
  if (!match) return { path: argument };
  const language = normalizeLanguage(match[1]);
  if (isKnownLanguage(language)) return { path: match[2], language };
  if (existsSync(argument)) return { path: argument };
  throw new UsageError(
    `--data ${argument}: unknown language code ${JSON.stringify(match[1])} before '='; known: ${KNOWN_LANGUAGES} ` +
      `(rows in other languages are read from a language column and get the English instruction)`,
  );
}

function choice<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`--${name}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

async function countRows(path: string): Promise<number> {
  let count = -1; // header
  // Syntax errors are reported by the evaluation pass, under the chosen --on-bad-row policy.
  for await (const _record of readTsvRecords(path, { onSyntaxError: () => {} })) count++;
  return Math.max(0, count);
}

/**
 * Errors caused by the input files, printed as their message alone (no stack trace). A question the model cannot
 * take (`ModelInputError`) does not stop the run: `evaluate` records it on its row, scored wrong.
 */
function isInputError(error: unknown): error is Error {
  return error instanceof BadRowError || error instanceof BenchmarkFormatError || error instanceof TsvSyntaxError;
}

/** predictions.jsonl: one JSON line per row, without the copied cells (the TSVs carry those). */
function predictionsJsonl(rows: readonly RowResult[]): string {
  return rows.map(({ fields: _fields, ...row }) => JSON.stringify(row)).join('\n') + (rows.length ? '\n' : '');
}

/** Writes predictions.jsonl and one `<dataset>_predictions.tsv` per dataset that has a header; returns the file names. */
async function writePredictions(
  out: string,
  rows: readonly RowResult[],
  headers: ReadonlyMap<string, readonly string[]>,
): Promise<string[]> {
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'predictions.jsonl'), predictionsJsonl(rows));
  const written = ['predictions.jsonl'];
  for (const [dataset, columns] of headers) {
    const file = `${dataset}_predictions.tsv`;
    await writeFile(join(out, file), predictionsToTsv(columns, rows.filter((row) => row.dataset === dataset)));
    written.push(file);
  }
  return written;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const print = (text: string) => io.stdout.write(text);
  const fail = (text: string) => io.stderr.write(text);
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        data: { type: 'string', multiple: true },
        out: { type: 'string' },
        language: { type: 'string' },
        circular: { type: 'string' },
        benchmark: { type: 'string' },
        'on-bad-row': { type: 'string' },
        postprocess: { type: 'string' },
        instruction: { type: 'string' },
        limit: { type: 'string' },
        backend: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        'score-target': { type: 'string' },
        'vision-tower': { type: 'string' },
        'tokenizer-dir': { type: 'string' },
        'predict-only': { type: 'boolean' },
        'no-progress': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    fail(`mllm-eval: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    print(USAGE);
    return 0;
  }
  let datasets: DatasetSpec[];
  let settings;
  try {
    if (!values.model) throw new UsageError('--model is required');
    if (!values.out) throw new UsageError('--out is required');
    const dataArguments = [...(values.data ?? []), ...positionals];
    if (dataArguments.length === 0) throw new UsageError('at least one --data <file.tsv> is required');
    const circularMode = choice('circular', values.circular, ['auto', 'on', 'off'] as const, 'auto');
    const benchmarkMode = choice('benchmark', values.benchmark, ['auto', 'mmmb', 'mmbench'] as const, 'auto');
    const onBadRow = choice('on-bad-row', values['on-bad-row'], ['error', 'skip'] as const, 'error');
    const postprocess = choice<PostprocessMode>('postprocess', values.postprocess, ['all', 'reference', 'none'], 'all');
    const instructionRule = choice<InstructionRule>('instruction', values.instruction, ['row-language', 'reference'], 'row-language');
    let limit: number | undefined;
    if (values.limit !== undefined) {
      limit = Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: expected a positive integer, got ${JSON.stringify(values.limit)}`);
    }
    let maxNewTokens: number | undefined;
    if (values['max-new-tokens'] !== undefined) {
      maxNewTokens = Number(values['max-new-tokens']);
      if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
        throw new UsageError(`--max-new-tokens: expected a positive integer, got ${JSON.stringify(values['max-new-tokens'])}`);
      }
    }
    const scoreTarget = choice<ScoreTarget>('score-target', values['score-target'], ['letter', 'text', 'letter-text'], 'letter');
    let language: string | undefined;
    if (values.language !== undefined) {
      language = normalizeLanguage(values.language);
      if (!isKnownLanguage(language)) {
        throw new UsageError(`--language: expected one of en, zh (cn), pt, ar, tr, ru, got ${JSON.stringify(values.language)}`);
      }
    }
    const tokenizerDir = values['tokenizer-dir'];
    if (tokenizerDir !== undefined) {
      if (!(existsSync(tokenizerDir) && statSync(tokenizerDir).isDirectory())) throw new UsageError(`--tokenizer-dir ${tokenizerDir}: no such directory`);
      if (!existsSync(join(tokenizerDir, 'tokenizer.json'))) throw new UsageError(`--tokenizer-dir ${tokenizerDir}: no tokenizer.json there`);
    }
    datasets = dataArguments.map((argument) => {
      const { path, language: fileLanguage } = parseDataArgument(argument);
      return {
        source: { path },
        name: undefined,
        language: fileLanguage,
        ...(benchmarkMode === 'auto' ? {} : { benchmark: benchmarkMode === 'mmmb' ? 'MMMB' : 'MMBench' }),
      } as DatasetSpec;
    });
    settings = {
      circular: circularMode === 'auto' ? ('auto' as const) : circularMode === 'on',
      onBadRow,
      postprocess,
      instructionRule,
      limit,
      language,
      modelSpec: values.model,
      out: values.out,
      progress: !values['no-progress'],
      predictOnly: values['predict-only'] ?? false,
      backend: values.backend,
      hostOptions: { maxNewTokens, scoreTarget },
      visionTowerDir: values['vision-tower'],
      tokenizerDir,
    };
  } catch (error) {
    if (error instanceof UsageError) {
      fail(`mllm-eval: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }

  // Name datasets after their files (as evaluate does), so the reference instruction rule sees `_pt` etc.
  datasets = datasets.map((spec) => {
    const path = (spec.source as { path: string }).path;
    return { ...spec, name: basename(path, extname(path)) };
  });

  let model;
  try {
    for (const spec of datasets) {
      const path = (spec.source as { path: string }).path;
      if (!existsSync(path)) throw new Error(`--data: no such file ${JSON.stringify(path)}`);
    }
    // A JS model module may register its own backend when imported, so the default backend is
    // chosen after loading it; checkpoints build tensors while loading, so they need one before.
    const isModule = /\.(c|m)?js$/.test(settings.modelSpec);
    if (!isModule) {
      await ensureBackend(settings.backend);
      markCpuHintShown();
    }
    const { modelSpec, hostOptions, visionTowerDir, tokenizerDir } = settings;
    model = await withoutTfjsHints(() =>
      loadEvalModel(modelSpec, io.hostLoader, hostOptions, undefined, { loader: io.pretrainedLoader, visionTowerDir, tokenizerDir }),
    );
    await ensureBackend(settings.backend);
    markCpuHintShown();
  } catch (error) {
    fail(`mllm-eval: ${(error as Error).message}\n`);
    return 1;
  }

  // Rows generated so far and the datasets' headers: written out even when a bad row stops the run.
  const done: RowResult[] = [];
  const headers = new Map<string, readonly string[]>();
  try {
    let total = 0;
    for (const spec of datasets) {
      const rows = await countRows((spec.source as { path: string }).path);
      total += settings.limit === undefined ? rows : Math.min(rows, settings.limit);
    }
    const progress = settings.progress ? createProgress({ total, stream: io.stderr, label: 'evaluating', now: io.now }) : undefined;
    const result = await evaluate({
      model,
      datasets,
      language: settings.language,
      circular: settings.circular,
      onBadRow: settings.onBadRow,
      postprocess: settings.postprocess,
      instructionRule: settings.instructionRule,
      limit: settings.limit,
      predictOnly: settings.predictOnly,
      onHeader: (dataset, columns) => headers.set(dataset, columns),
      onRow: (row) => {
        done.push(row);
        progress?.tick();
      },
    });
    progress?.done();
    const { report } = result;
    const written = await writePredictions(settings.out, result.rows, headers);
    await writeFile(join(settings.out, 'report.json'), reportToJson(report));
    // Rows the model could not take went on as wrong answers; say so once, with the first message.
    const errors = report.errorRows > 0 ? `, ${report.errorRows} the model could not take` : '';
    if (report.errorRows > 0) {
      const [first] = report.errors;
      fail(
        `mllm-eval: ${report.errorRows} row${report.errorRows === 1 ? '' : 's'} the model could not take ` +
          `(${settings.predictOnly ? 'no prediction' : 'scored wrong'}; listed in ${settings.predictOnly ? 'report.json' : 'report.md and report.json'}), ` +
          `the first: ${first.dataset} row ${first.index}: ${first.message}\n`,
      );
    }
    if (settings.predictOnly) {
      print(
        `predictions for ${report.rowsEvaluated} rows (${report.skippedRows} skipped${errors}), not scored (--predict-only)\n` +
          `written to ${settings.out}: ${written.join(', ')}, report.json\n`,
      );
      return 0;
    }
    await writeFile(join(settings.out, 'report.md'), reportToMarkdown(report));
    await writeFile(join(settings.out, 'report.csv'), reportToCsv(report));
    await writeFile(join(settings.out, 'comparison.md'), comparisonTable(report));
    const overall = report.overall;
    print(
      `overall accuracy ${Number.isNaN(overall.accuracy) ? '–' : overall.accuracy.toFixed(2)}% ` +
        `(${overall.correct}/${overall.total} questions, ${report.rowsEvaluated} rows, ${report.skippedRows} skipped${errors})\n` +
        `reports written to ${settings.out}\n`,
    );
    return 0;
  } catch (error) {
    let saved = '';
    if (done.length > 0) {
      try {
        const written = await writePredictions(settings.out, done, headers);
        saved = `the ${done.length} rows generated before it are in ${settings.out}: ${written.join(', ')} (no report)\n`;
      } catch (writeError) {
        saved = `the ${done.length} rows generated before it could not be written: ${(writeError as Error).message}\n`;
      }
    }
    if (error instanceof BadRowError) {
      fail(`\nmllm-eval: bad row: ${error.message}\n${saved}(use --on-bad-row skip to skip and count such rows)\n`);
      return 1;
    }
    if (isInputError(error)) {
      fail(`\nmllm-eval: ${error.message}\n${saved}`);
      return 1;
    }
    // Anything else is a bug in the model or here: keep the stack.
    fail(`\nmllm-eval: ${(error as Error).stack ?? String(error)}\n${saved}`);
    return 1;
  } finally {
    await model.dispose?.();
  }
}
