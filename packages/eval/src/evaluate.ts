/**
 * Runs a model over benchmark TSVs and scores it:
 * generate → (Parrot post-processing) → letter / text extraction → log-likelihood fallback →
 * single-pass (MMMB) or circular (MMBench rotations) scoring → {@link Report}.
 */
import { basename, extname } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { extractAnswer, postprocessAnswer, type ExtractionMethod, type PostprocessMode } from './answer-extraction.js';
import { BadRowError, type BadRowIssue, type BadRowPolicy } from './bad-row.js';
import { readBenchmarkRows, type BenchmarkRow, type OptionChoice } from './benchmark-reader.js';
import type { EvalModel } from './eval-model.js';
import { pixelImageToTensor, type ImageDecoder } from '@mllm/models/image';
import { buildPrompt, type InstructionRule } from './prompt.js';
import type { BenchmarkName } from './published-results.js';
import { summarize, type Report } from './report.js';
import { describeSource, type TsvSource } from './tsv-source.js';

/** One benchmark file to evaluate. */
export interface DatasetSpec {
  readonly source: TsvSource;
  /** Label in reports (default: the file name without extension, e.g. `mmmb_pt`). */
  readonly name?: string;
  /** Language of rows without a `language`/`lang` cell (overrides the run-wide option). */
  readonly language?: string;
  /** Circular scoring: true, false or `'auto'` (overrides the run-wide option). */
  readonly circular?: boolean | 'auto';
  /** Which published column this file corresponds to (default: MMBench if circular, else MMMB). */
  readonly benchmark?: BenchmarkName;
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  readonly model: EvalModel;
  readonly datasets: readonly DatasetSpec[];
  /** Default language of rows without a `language`/`lang` cell. */
  readonly language?: string;
  /**
   * `'auto'` (default): circular when the file has rotated copies (index ≥ 1,000,000); true: always
   * (files without rotations then score each question once); false: every row is its own question.
   */
  readonly circular?: boolean | 'auto';
  /** Bad rows: `'error'` (default) throws {@link BadRowError}; `'skip'` drops and counts them. */
  readonly onBadRow?: BadRowPolicy;
  /** See {@link PostprocessMode} (default `'all'`). */
  readonly postprocess?: PostprocessMode;
  /** See {@link InstructionRule} (default `'row-language'`); `'reference'` uses the dataset name. */
  readonly instructionRule?: InstructionRule;
  /** Custom image decoder (browser use). */
  readonly decodeImage?: ImageDecoder;
  /** Cell values read as missing (see `readBenchmarkRows`). */
  readonly missingValues?: readonly string[];
  /** Evaluate at most this many rows per dataset (smoke runs; circular groups may be incomplete). */
  readonly limit?: number;
  /** Called after each evaluated row. */
  readonly onRow?: (result: RowResult) => void;
  /** Called with a dataset's header (column names as written) before its first row. */
  readonly onHeader?: (dataset: string, columns: readonly string[]) => void;
  /**
   * Predict without scoring (default false): rows need no answer (a test split), every row gets a
   * prediction, and no question is scored — `questions` is empty and the report counts rows only.
   * Write the predictions with {@link predictionsToTsv} (the benchmark's submission format).
   */
  readonly predictOnly?: boolean;
}

/**
 * How a row's prediction was obtained; `'error'`: the model could not take the row (a `ModelInputError`, see
 * {@link isModelInputError}), so it has no prediction and counts as wrong.
 */
export type PredictionMethod = ExtractionMethod | 'loglikelihood' | 'unresolved' | 'error';

/**
 * Whether `error` is `@mllm/models`' `ModelInputError`: the model cannot take this row as given (e.g. a prompt
 * longer than the checkpoint's limit, more images than the authors' format holds), as opposed to a bug. Matched
 * by name, not `instanceof`: the harness imports only `@mllm/models/image` eagerly (the main entry loads lazily,
 * with the model), and a model from a user's JS module may throw it from another copy of `@mllm/models`.
 */
export function isModelInputError(error: unknown): error is Error {
  return error instanceof Error && error.name === 'ModelInputError';
}

/** The outcome for one row (one rotation). */
export interface RowResult {
  readonly dataset: string;
  readonly index: number;
  readonly baseIndex: number;
  readonly rotation: number;
  readonly language: string | undefined;
  readonly category: string | undefined;
  readonly l2Category: string | undefined;
  readonly split: string | undefined;
  /** 1-based line in the source where the row ends. */
  readonly line: number;
  readonly answer: string;
  readonly prompt: string;
  /** The model's raw generation. */
  readonly generation: string;
  /** After post-processing; what extraction read. */
  readonly processed: string;
  /** Predicted letter (`Z` = refused), undefined when unresolved. */
  readonly prediction: string | undefined;
  readonly method: PredictionMethod;
  /** Log-likelihoods per option when the fallback ran. */
  readonly optionScores?: readonly number[];
  /** Prediction equals the answer; false for rows without an answer and for rows with an `error`. */
  readonly correct: boolean;
  /**
   * The message of the `ModelInputError` the model threw for this row (then `method` is `'error'`, `generation`
   * and `processed` are empty, there is no prediction, and the row counts as wrong); absent otherwise.
   */
  readonly error?: string;
  /** The row's cells by column key (`BenchmarkRow.fields`, image excluded), for predictions files. */
  readonly fields: Readonly<Record<string, string>>;
}

/** The outcome for one question (all its rotations when circular). */
export interface QuestionResult {
  readonly dataset: string;
  readonly benchmark: BenchmarkName;
  readonly baseIndex: number;
  readonly language: string | undefined;
  readonly category: string | undefined;
  readonly l2Category: string | undefined;
  readonly split: string | undefined;
  /** Rows (rotations) that make up the question. */
  readonly rotations: number;
  readonly correct: boolean;
}

/** Per-dataset facts. */
export interface DatasetResult {
  readonly name: string;
  readonly benchmark: BenchmarkName;
  readonly circular: boolean;
  readonly rows: number;
  readonly questions: number;
  /** The file's header as written (trimmed), image included. */
  readonly columns: readonly string[];
}

/** Everything {@link evaluate} produced. */
export interface EvaluationResult {
  readonly rows: readonly RowResult[];
  readonly questions: readonly QuestionResult[];
  readonly datasets: readonly DatasetResult[];
  readonly skipped: readonly BadRowIssue[];
  readonly report: Report;
}

/** Index of the largest score (first one on ties); throws on NaN / +Infinity / wrong length. */
export function argmaxScore(scores: readonly number[], options: readonly OptionChoice[], where: string): number {
  if (!Array.isArray(scores) || scores.length !== options.length) {
    throw new TypeError(
      `${where}: scoreOptions must return one log-likelihood per option (${options.length}), ` +
        `got ${Array.isArray(scores) ? `${scores.length} values` : typeof scores}`,
    );
  }
  let best = 0;
  scores.forEach((score, i) => {
    if (typeof score !== 'number' || Number.isNaN(score) || score === Infinity) {
      throw new TypeError(`${where}: scoreOptions returned ${score} for option ${options[i].letter}; expected a finite number or -Infinity`);
    }
    if (score > scores[best]) best = i;
  });
  return best;
}

/**
 * Scores one row with the model. Image tensors are created and disposed here. A row the model cannot take (it
 * throws a `ModelInputError`, see {@link isModelInputError}) gives a result with `method: 'error'` and the
 * error's message, scored wrong, so a run goes on past it; any other error propagates.
 */
export async function evaluateRow(
  model: EvalModel,
  row: BenchmarkRow,
  dataset: string,
  options: Pick<EvaluateOptions, 'postprocess' | 'instructionRule'> = {},
): Promise<RowResult> {
  const prompt = buildPrompt(row, { instructionRule: options.instructionRule, datasetName: dataset });
  const images = row.images.map(pixelImageToTensor);
  try {
    let generation = '';
    let processed = '';
    let prediction: string | undefined;
    let method: PredictionMethod;
    let optionScores: readonly number[] | undefined;
    let error: string | undefined;
    try {
      generation = await model.generate(prompt, images);
      if (typeof generation !== 'string') {
        throw new TypeError(`model.generate must return a string, got ${typeof generation} (row ${row.index} of ${dataset})`);
      }
      processed = postprocessAnswer(generation, prompt, options.postprocess ?? 'all');
      const extraction = extractAnswer(processed, row.options);
      prediction = extraction?.letter;
      method = extraction?.method ?? 'unresolved';
      if (extraction === undefined && model.scoreOptions) {
        optionScores = [...(await model.scoreOptions(prompt, images, row.options))];
        prediction = row.options[argmaxScore(optionScores, row.options, `row ${row.index} of ${dataset}`)].letter;
        method = 'loglikelihood';
      }
    } catch (thrown) {
      // The row is what the model cannot take (its message says why): recorded and scored wrong. Bugs stop the run.
      if (!isModelInputError(thrown)) throw thrown;
      [generation, processed, prediction, method, optionScores, error] = ['', '', undefined, 'error', undefined, thrown.message];
    }
    return {
      dataset,
      index: row.index,
      baseIndex: row.baseIndex,
      rotation: row.rotation,
      language: row.language,
      category: row.category,
      l2Category: row.l2Category,
      split: row.split,
      line: row.line,
      answer: row.answer,
      prompt,
      generation,
      processed,
      prediction,
      method,
      ...(optionScores ? { optionScores } : {}),
      correct: row.answer !== '' && prediction === row.answer,
      ...(error === undefined ? {} : { error }),
      fields: row.fields,
    };
  } finally {
    tf.dispose(images);
  }
}

/** Default report label of a dataset. */
export function datasetLabel(spec: DatasetSpec, position: number): string {
  if (spec.name) return spec.name;
  const described = describeSource(spec.source);
  if (described.startsWith('<')) return `dataset-${position + 1}`;
  return basename(described, extname(described));
}

/**
 * Groups row results into questions. Circular: rows sharing `baseIndex` form one question, correct
 * only if every rotation is; the question takes its labels from the rotation-0 row, and a rotation
 * whose rotation-0 row is absent is a bad row (`rotation-without-base`). Single pass: one question
 * per row.
 */
export function scoreQuestions(
  rows: readonly RowResult[],
  circular: boolean,
  benchmark: BenchmarkName,
): { questions: QuestionResult[]; orphans: RowResult[] } {
  if (!circular) {
    return {
      questions: rows.map((row) => ({
        dataset: row.dataset, benchmark, baseIndex: row.index, language: row.language, category: row.category,
        l2Category: row.l2Category, split: row.split, rotations: 1, correct: row.correct,
      })),
      orphans: [],
    };
  }
  const groups = new Map<number, RowResult[]>();
  for (const row of rows) {
    const group = groups.get(row.baseIndex) ?? [];
    group.push(row);
    groups.set(row.baseIndex, group);
  }
  const questions: QuestionResult[] = [];
  const orphans: RowResult[] = [];
  for (const group of groups.values()) {
    const base = group.find((row) => row.rotation === 0);
    if (!base) {
      orphans.push(...group);
      continue;
    }
    questions.push({
      dataset: base.dataset, benchmark, baseIndex: base.baseIndex, language: base.language, category: base.category,
      l2Category: base.l2Category, split: base.split, rotations: group.length,
      correct: group.every((row) => row.correct),
    });
  }
  questions.sort((a, b) => a.baseIndex - b.baseIndex);
  return { questions, orphans };
}

/** Evaluates `model` on every dataset and builds the report. */
export async function evaluate(options: EvaluateOptions): Promise<EvaluationResult> {
  const { model } = options;
  if (!model || typeof model.generate !== 'function') {
    throw new TypeError('evaluate: options.model must implement generate(prompt, images)');
  }
  if (!Array.isArray(options.datasets) || options.datasets.length === 0) {
    throw new TypeError('evaluate: options.datasets must be a non-empty array of { source, … }');
  }
  if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit > 0)) {
    throw new TypeError(`evaluate: limit must be a positive integer, got ${options.limit}`);
  }
  const policy = options.onBadRow ?? 'error';
  const predictOnly = options.predictOnly ?? false;
  const allRows: RowResult[] = [];
  const allQuestions: QuestionResult[] = [];
  const datasets: DatasetResult[] = [];
  const skipped: BadRowIssue[] = [];
  const names = new Set<string>();

  for (const [position, spec] of options.datasets.entries()) {
    const name = datasetLabel(spec, position);
    if (names.has(name)) throw new TypeError(`evaluate: two datasets are named ${JSON.stringify(name)}; give them distinct names`);
    names.add(name);
    const rows: RowResult[] = [];
    const sourceName = describeSource(spec.source);
    let columns: readonly string[] = [];
    for await (const row of readBenchmarkRows(spec.source, {
      language: spec.language ?? options.language,
      onBadRow: policy,
      onSkip: (issue) => skipped.push(issue),
      decodeImage: options.decodeImage,
      missingValues: options.missingValues,
      sourceName: sourceName.startsWith('<') ? name : sourceName,
      requireAnswers: !predictOnly,
      onHeader: (header) => {
        columns = header;
        options.onHeader?.(name, header);
      },
    })) {
      const result = await evaluateRow(model, row, name, options);
      rows.push(result);
      options.onRow?.(result);
      if (options.limit !== undefined && rows.length >= options.limit) break;
    }
    const circularSetting = spec.circular ?? options.circular ?? 'auto';
    const circular = circularSetting === 'auto' ? rows.some((row) => row.rotation > 0) : circularSetting;
    const benchmark = spec.benchmark ?? (circular ? 'MMBench' : 'MMMB');
    // Predictions only: nothing is scored, so a rotation without its original is no problem either.
    const { questions, orphans } = predictOnly ? { questions: [], orphans: [] } : scoreQuestions(rows, circular, benchmark);
    for (const orphan of orphans) {
      const issue: BadRowIssue = {
        rowIndex: String(orphan.index),
        source: sourceName.startsWith('<') ? name : sourceName,
        line: orphan.line,
        reason: 'rotation-without-base',
        message: `rotated copy of question ${orphan.baseIndex}, whose original (index ${orphan.baseIndex}) is missing`,
      };
      if (policy === 'error') throw new BadRowError(issue);
      skipped.push(issue);
    }
    const kept = new Set(orphans);
    allRows.push(...rows.filter((row) => !kept.has(row)));
    allQuestions.push(...questions);
    datasets.push({ name, benchmark, circular, rows: rows.length - orphans.length, questions: questions.length, columns });
  }
  const report = summarize({ questions: allQuestions, rows: allRows, datasets, skipped, model: model.name });
  return { rows: allRows, questions: allQuestions, datasets, skipped, report };
}
