/**
 * Published accuracies (%) to compare against.
 *
 * Source: Parrot paper (Sun et al., "Parrot: Multilingual Visual Instruction Tuning", arXiv
 * 2406.02539), Table 2 — the MMMB and multilingual MMBench (dev, circular) results, as reproduced in
 * the authors' repository README performance table (evaluated with VLMEvalKit). Values transcribed by
 * hand; Chinese is reported as `zh` here (`cn` in the authors' dataset names).
 */
import type { Language } from './languages.js';

/** The two benchmarks of the comparison table. */
export type BenchmarkName = 'MMMB' | 'MMBench';

/** One published model row. */
export interface PublishedResult {
  readonly model: string;
  readonly scores: Readonly<Record<BenchmarkName, Readonly<Record<Language, number>>>>;
}

/** Column order of the comparison table (the paper's order). */
export const COMPARISON_LANGUAGES: readonly Language[] = Object.freeze(['en', 'zh', 'pt', 'ar', 'tr', 'ru']);

/** Parrot-7B, Parrot-14B and the LLaVA-1.5-7B baseline, paper Table 2. */
export const PUBLISHED_RESULTS: readonly PublishedResult[] = Object.freeze([
  {
    model: 'Parrot-7B (Qwen1.5-7B)',
    scores: {
      MMMB: { en: 70.0, zh: 68.13, pt: 67.31, ar: 62.69, tr: 58.01, ru: 66.26 },
      MMBench: { en: 70.7, zh: 70.36, pt: 65.12, ar: 57.82, tr: 58.43, ru: 64.0 },
    },
  },
  {
    model: 'Parrot-14B (Qwen1.5-14B)',
    scores: {
      MMMB: { en: 73.92, zh: 71.64, pt: 69.82, ar: 68.13, tr: 64.33, ru: 70.18 },
      MMBench: { en: 74.4, zh: 72.25, pt: 69.16, ar: 66.15, tr: 64.52, ru: 69.33 },
    },
  },
  {
    model: 'LLaVA-1.5-7B (Vicuna-7B)',
    scores: {
      MMMB: { en: 67.07, zh: 58.83, pt: 59.76, ar: 43.5, tr: 46.43, ru: 59.06 },
      MMBench: { en: 65.37, zh: 58.33, pt: 59.02, ar: 36.16, tr: 43.9, ru: 56.95 },
    },
  },
]);
