/**
 * Accuracy reports: overall, per dataset, per language, per `l2-category` and per `category`
 * (VLMEvalKit's `report_acc` groups, MMBench ability names abbreviated as CP, FP-S, …), rendered as
 * markdown, CSV and JSON, plus a side-by-side table with the published Parrot / LLaVA-1.5 numbers.
 */
import type { BadRowIssue } from './bad-row.js';
import type { DatasetResult, PredictionMethod, QuestionResult, RowResult } from './evaluate.js';
import { COMPARISON_LANGUAGES, PUBLISHED_RESULTS, type BenchmarkName, type PublishedResult } from './published-results.js';

/** Correct / total and accuracy in percent (NaN for an empty group). */
export interface Accuracy {
  readonly correct: number;
  readonly total: number;
  readonly accuracy: number;
}

/** A scored run. */
export interface Report {
  readonly model: string | undefined;
  readonly overall: Accuracy;
  readonly byDataset: Readonly<Record<string, Accuracy & { readonly benchmark: BenchmarkName; readonly circular: boolean }>>;
  readonly byLanguage: Readonly<Record<string, Accuracy>>;
  readonly byL2Category: Readonly<Record<string, Accuracy>>;
  readonly byCategory: Readonly<Record<string, Accuracy>>;
  /** Accuracy per benchmark and language: the cells of the comparison table. */
  readonly byBenchmarkLanguage: Readonly<Record<string, Readonly<Record<string, Accuracy>>>>;
  /** Rows (rotations) evaluated, and how their predictions were obtained. */
  readonly rowsEvaluated: number;
  readonly predictionMethods: Readonly<Partial<Record<PredictionMethod, number>>>;
  readonly skippedRows: number;
  readonly skipped: readonly BadRowIssue[];
  /**
   * Rows the model could not take (it threw a `ModelInputError`, e.g. a prompt longer than the checkpoint's
   * limit): evaluated and scored wrong, listed here with the error's message.
   */
  readonly errorRows: number;
  readonly errors: readonly RowErrorEntry[];
}

/** A row the model could not take ({@link Report.errors}). */
export interface RowErrorEntry {
  readonly dataset: string;
  readonly index: number;
  /** 1-based line in the source where the row ends. */
  readonly line: number;
  /** The `ModelInputError`'s message. */
  readonly message: string;
}

/** MMBench ability names → the abbreviations of the MMBench paper and VLMEvalKit reports. */
export const MMBENCH_ABBREVIATIONS: Readonly<Record<string, string>> = Object.freeze({
  coarse_perception: 'CP',
  'finegrained_perception (instance-level)': 'FP-S',
  'finegrained_perception (cross-instance)': 'FP-C',
  logic_reasoning: 'LR',
  relation_reasoning: 'RR',
  attribute_reasoning: 'AR',
});

/** Label missing values get in reports. */
export const UNKNOWN_LABEL = 'unknown';

/** `correct / total` as an {@link Accuracy} (percent). */
export function accuracyOf(correct: number, total: number): Accuracy {
  return { correct, total, accuracy: total === 0 ? Number.NaN : (100 * correct) / total };
}

function groupBy(questions: readonly QuestionResult[], key: (q: QuestionResult) => string | undefined): Record<string, Accuracy> {
  const counts = new Map<string, [number, number]>();
  for (const question of questions) {
    const label = key(question) ?? UNKNOWN_LABEL;
    const count = counts.get(label) ?? [0, 0];
    count[0] += question.correct ? 1 : 0;
    count[1] += 1;
    counts.set(label, count);
  }
  const result: Record<string, Accuracy> = {};
  for (const label of [...counts.keys()].sort()) {
    const [correct, total] = counts.get(label) as [number, number];
    result[label] = accuracyOf(correct, total);
  }
  return result;
}

/** Builds a {@link Report} from scored questions. */
export function summarize(input: {
  questions: readonly QuestionResult[];
  rows: readonly RowResult[];
  datasets: readonly DatasetResult[];
  skipped: readonly BadRowIssue[];
  model?: string;
}): Report {
  const { questions, rows, datasets, skipped } = input;
  const correct = questions.filter((q) => q.correct).length;
  const byDataset: Record<string, Accuracy & { benchmark: BenchmarkName; circular: boolean }> = {};
  for (const dataset of datasets) {
    const own = questions.filter((q) => q.dataset === dataset.name);
    byDataset[dataset.name] = {
      ...accuracyOf(own.filter((q) => q.correct).length, own.length),
      benchmark: dataset.benchmark,
      circular: dataset.circular,
    };
  }
  const byBenchmarkLanguage: Record<string, Record<string, Accuracy>> = {};
  for (const benchmark of [...new Set(questions.map((q) => q.benchmark))].sort()) {
    byBenchmarkLanguage[benchmark] = groupBy(questions.filter((q) => q.benchmark === benchmark), (q) => q.language);
  }
  const predictionMethods: Partial<Record<PredictionMethod, number>> = {};
  for (const row of rows) predictionMethods[row.method] = (predictionMethods[row.method] ?? 0) + 1;
  const errors = rows.flatMap((row) => (row.error === undefined ? [] : [{ dataset: row.dataset, index: row.index, line: row.line, message: row.error }]));
  return {
    model: input.model,
    overall: accuracyOf(correct, questions.length),
    byDataset,
    byLanguage: groupBy(questions, (q) => q.language),
    byL2Category: groupBy(
      questions.filter((q) => q.l2Category !== undefined),
      (q) => q.l2Category,
    ),
    byCategory: groupBy(
      questions.filter((q) => q.category !== undefined),
      (q) => q.category,
    ),
    byBenchmarkLanguage,
    rowsEvaluated: rows.length,
    predictionMethods,
    skippedRows: skipped.length,
    skipped,
    errorRows: errors.length,
    errors,
  };
}

const percent = (accuracy: Accuracy) => (Number.isNaN(accuracy.accuracy) ? '–' : accuracy.accuracy.toFixed(2));
const markdownCell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const abbreviated = (label: string) => (MMBENCH_ABBREVIATIONS[label] ? `${label} (${MMBENCH_ABBREVIATIONS[label]})` : label);

function accuracyTable(title: string, groups: Readonly<Record<string, Accuracy>>, labeller = (label: string) => label): string[] {
  const entries = Object.entries(groups);
  if (entries.length === 0) return [];
  const lines = [`## ${title}`, '', `| ${title.replace(/^By /, '')} | Accuracy (%) | Correct | Total |`, '|---|---:|---:|---:|'];
  for (const [label, accuracy] of entries) {
    lines.push(`| ${markdownCell(labeller(label))} | ${percent(accuracy)} | ${accuracy.correct} | ${accuracy.total} |`);
  }
  lines.push('');
  return lines;
}

/**
 * Side-by-side markdown table: the published rows and this run (`–` where not evaluated), MMMB then
 * MMBench, languages en zh pt ar tr ru.
 */
export function comparisonTable(report: Report, published: readonly PublishedResult[] = PUBLISHED_RESULTS): string {
  const benchmarks: BenchmarkName[] = ['MMMB', 'MMBench'];
  const header = ['Model', ...benchmarks.flatMap((b) => COMPARISON_LANGUAGES.map((l) => `${b} ${l}`))];
  const lines = [`| ${header.join(' | ')} |`, `|---|${header.slice(1).map(() => '---:').join('|')}|`];
  for (const row of published) {
    const cells = benchmarks.flatMap((b) => COMPARISON_LANGUAGES.map((l) => row.scores[b][l].toFixed(2)));
    lines.push(`| ${markdownCell(row.model)} | ${cells.join(' | ')} |`);
  }
  const ours = benchmarks.flatMap((b) =>
    COMPARISON_LANGUAGES.map((l) => {
      const accuracy = report.byBenchmarkLanguage[b]?.[l];
      return accuracy ? `**${percent(accuracy)}**` : '–';
    }),
  );
  lines.push(`| **${markdownCell(report.model ?? 'this run')}** | ${ours.join(' | ')} |`);
  return lines.join('\n') + '\n';
}

/** The report as markdown. */
export function reportToMarkdown(report: Report): string {
  const lines = [
    `# Evaluation report${report.model ? `: ${markdownCell(report.model)}` : ''}`,
    '',
    `Overall accuracy: **${percent(report.overall)}%** (${report.overall.correct} / ${report.overall.total} questions; ` +
      `${report.rowsEvaluated} rows evaluated, ${report.skippedRows} bad rows skipped` +
      `${report.errorRows > 0 ? `, ${report.errorRows} rows the model could not take, scored wrong` : ''}).`,
    '',
    '## By dataset',
    '',
    '| Dataset | Benchmark | Circular | Accuracy (%) | Correct | Total |',
    '|---|---|---|---:|---:|---:|',
    ...Object.entries(report.byDataset).map(
      ([name, a]) => `| ${markdownCell(name)} | ${a.benchmark} | ${a.circular ? 'yes' : 'no'} | ${percent(a)} | ${a.correct} | ${a.total} |`,
    ),
    '',
    ...accuracyTable('By language', report.byLanguage),
    ...accuracyTable('By l2-category', report.byL2Category, abbreviated),
    ...accuracyTable('By category', report.byCategory, abbreviated),
    '## Prediction methods',
    '',
    '| Method | Rows |',
    '|---|---:|',
    ...Object.entries(report.predictionMethods).map(([method, count]) => `| ${method} | ${count} |`),
    '',
    '## Comparison with published results (accuracy %, paper Table 2)',
    '',
    comparisonTable(report),
  ];
  if (report.skipped.length > 0) {
    lines.push('## Skipped rows', '', '| Source | Line | Index | Reason | Message |', '|---|---:|---|---|---|');
    for (const issue of report.skipped.slice(0, 100)) {
      lines.push(
        `| ${markdownCell(issue.source)} | ${issue.line} | ${markdownCell(issue.rowIndex)} | ${issue.reason} | ${markdownCell(issue.message)} |`,
      );
    }
    if (report.skipped.length > 100) lines.push('', `… and ${report.skipped.length - 100} more (see report.json).`);
    lines.push('');
  }
  if (report.errors.length > 0) {
    lines.push('## Rows the model could not take (scored wrong)', '', '| Dataset | Line | Index | Error |', '|---|---:|---|---|');
    for (const entry of report.errors.slice(0, 100)) {
      lines.push(`| ${markdownCell(entry.dataset)} | ${entry.line} | ${entry.index} | ${markdownCell(entry.message)} |`);
    }
    if (report.errors.length > 100) lines.push('', `… and ${report.errors.length - 100} more (see report.json).`);
    lines.push('');
  }
  return lines.join('\n');
}

const csvCell = (value: string | number) => {
  const text = typeof value === 'number' ? (Number.isNaN(value) ? '' : String(Number(value.toFixed(4)))) : value;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

/**
 * The report as CSV in long form: `group,key,correct,total,accuracy` where group is `overall`,
 * `dataset`, `language`, `l2-category`, `category`, `benchmark-language` (key `MMMB/en`, …), then an
 * `errors,rows,<count>,,` line (rows the model could not take) and a final `skipped,rows,<count>,,` line.
 * Accuracy in percent.
 */
export function reportToCsv(report: Report): string {
  const lines = ['group,key,correct,total,accuracy'];
  const add = (group: string, key: string, a: Accuracy) =>
    lines.push([group, key, a.correct, a.total, a.accuracy].map(csvCell).join(','));
  add('overall', 'all', report.overall);
  for (const [key, a] of Object.entries(report.byDataset)) add('dataset', key, a);
  for (const [key, a] of Object.entries(report.byLanguage)) add('language', key, a);
  for (const [key, a] of Object.entries(report.byL2Category)) add('l2-category', key, a);
  for (const [key, a] of Object.entries(report.byCategory)) add('category', key, a);
  for (const [benchmark, groups] of Object.entries(report.byBenchmarkLanguage)) {
    for (const [language, a] of Object.entries(groups)) add('benchmark-language', `${benchmark}/${language}`, a);
  }
  lines.push(['errors', 'rows', report.errorRows, '', ''].map(csvCell).join(','));
  lines.push(['skipped', 'rows', report.skippedRows, '', ''].map(csvCell).join(','));
  return lines.join('\n') + '\n';
}

/** The report as pretty JSON (NaN accuracies become null). */
export function reportToJson(report: Report): string {
  return JSON.stringify(report, (_key, value) => (typeof value === 'number' && Number.isNaN(value) ? null : value), 2) + '\n';
}
