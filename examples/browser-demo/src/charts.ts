/**
 * The page's charts, as Vega-Lite specs rendered to SVG with vega (no hand-drawn charts).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { aggregatePieces, tokenPieces, type DemoResult, type PieceDecoder, type TokenPiece } from './demo-model.js';

const views = new WeakMap<HTMLElement, vega.View>();

/** Render `spec` into `container` (replacing a previous chart). */
export async function renderChart(container: HTMLElement, spec: TopLevelSpec): Promise<void> {
  views.get(container)?.finalize();
  container.replaceChildren();
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'svg', container, hover: true });
  views.set(container, view);
  await view.runAsync();
}

/** x-axis keys `index|label` keep repeated labels apart; the axis shows only the label. */
const pieceKey = (i: number, label: string): string => `${String(i).padStart(4, '0')}|${label}`;
const pieceAxis = { title: null, labelExpr: "split(datum.value, '|')[1]", labelAngle: 0, labelFontSize: 11, labelOverlap: false } as const;

/** ParrotMoE CLS→text attention over the prompt, one bar per character / special token. */
export function textAttentionSpec(result: DemoResult, tokenizer: PieceDecoder): TopLevelSpec {
  const decode = (ids: number[]) => tokenizer.decode(ids);
  const promptLength = result.promptIds.length;
  const pieces = tokenPieces(result.textIds.slice(0, promptLength), tokenizer);
  const sums = aggregatePieces(result.textAttention ?? [], pieces, 'sum');
  const rows = pieces
    .map((p, i) => ({ key: pieceKey(i, p.label), token: p.kind === 'special' ? decode(result.textIds.slice(p.start, p.end)) : p.label, kind: p.kind, attention: sums[i]!, tokens: p.end - p.start }))
    .filter((r) => r.token !== '<image>');
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: { step: 16 },
    height: 160,
    data: { values: rows },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      x: { field: 'key', type: 'ordinal', sort: null, axis: pieceAxis },
      y: { field: 'attention', type: 'quantitative', title: 'CLS → text attention' },
      color: { field: 'kind', type: 'nominal', title: 'token', scale: { domain: ['text', 'special'], range: ['#4c78a8', '#bab0ac'] } },
      tooltip: [{ field: 'token' }, { field: 'attention', format: '.4f' }, { field: 'tokens', title: 'tokens' }],
    },
  };
}

/** ParrotMoE routing weights over the experts, with the uniform 1/E line. */
export function routingSpec(result: DemoResult): TopLevelSpec {
  const weights = result.routingWeights ?? [];
  const rows = weights.map((w, e) => ({ expert: `expert ${e}`, weight: w }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: { step: 44 },
    height: 160,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'bar', tooltip: true, color: '#f58518' },
        encoding: {
          x: { field: 'expert', type: 'nominal', sort: null, axis: { title: null, labelAngle: 0 } },
          y: { field: 'weight', type: 'quantitative', title: 'routing weight', scale: { domain: [0, Math.max(0.5, ...weights)] } },
          tooltip: [{ field: 'expert' }, { field: 'weight', format: '.4f' }],
        },
      },
      {
        data: { values: [{ uniform: weights.length ? 1 / weights.length : 0 }] },
        mark: { type: 'rule', strokeDash: [4, 3], color: '#555' },
        encoding: { y: { field: 'uniform', type: 'quantitative' } },
      },
    ],
  };
}

/**
 * Wings router blend per token of the spliced sequence (image tokens included), one row per
 * decoder layer with learners: stacked visual (w_v) and textual (1 − w_v) weights.
 */
export function wingsBlendSpec(result: DemoResult, tokenizer: PieceDecoder): TopLevelSpec {
  const decode = (ids: number[]) => tokenizer.decode(ids);
  const wings = result.wings!;
  const pieces: TokenPiece[] = tokenPieces(result.splicedIds, tokenizer);
  const promptEnd = result.splicedIds.length - result.answerIds.length;
  const rows: Array<Record<string, unknown>> = [];
  wings.layers.forEach((layer, l) => {
    const means = aggregatePieces(wings.visualWeight[l]!, pieces, 'mean');
    pieces.forEach((p, i) => {
      const part = p.start >= promptEnd ? 'answer' : 'prompt';
      const token = p.kind === 'special' ? decode(result.splicedIds.slice(p.start, p.end)) : p.kind === 'image' ? `image token ${-1 - result.splicedIds[p.start]!}` : p.label;
      const base = { key: pieceKey(i, p.label), token, layer: `layer ${layer}`, part };
      rows.push({ ...base, learner: 'visual', weight: means[i]! });
      rows.push({ ...base, learner: 'textual', weight: 1 - means[i]! });
    });
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: rows },
    facet: { row: { field: 'layer', type: 'nominal', title: null } },
    spec: {
      width: { step: 11 },
      height: 90,
      mark: { type: 'bar', tooltip: true },
      encoding: {
        x: { field: 'key', type: 'ordinal', sort: null, axis: { ...pieceAxis, labelFontSize: 9 } },
        y: { field: 'weight', type: 'quantitative', stack: 'normalize', title: 'router weight' },
        color: { field: 'learner', type: 'nominal', scale: { domain: ['visual', 'textual'], range: ['#e45756', '#72b7b2'] } },
        order: { field: 'learner', sort: 'descending' },
        opacity: { field: 'part', type: 'nominal', scale: { domain: ['prompt', 'answer'], range: [1, 0.55] }, title: 'position' },
        tooltip: [{ field: 'token' }, { field: 'layer' }, { field: 'learner' }, { field: 'weight', format: '.4f' }, { field: 'part' }],
      },
    },
    resolve: { scale: { x: 'independent' } },
  };
}
