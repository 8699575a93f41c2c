/**
 * Plots as SVG through Vega-Lite (a charting library; no hand-drawn pixels), rendered headless
 * in Node with Vega's SVG renderer.
 */
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

export type VegaLiteSpec = vegaLite.TopLevelSpec;

/** Render a Vega-Lite spec to an SVG string. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Grouped bars: one bar per `series` inside each `group`, optional error bars from `low`/`high`. */
export function groupedBarSpec(args: {
  title: string;
  rows: Array<{ group: string; series: string; value: number; low?: number; high?: number }>;
  yTitle: string;
  yDomain?: [number, number];
}): VegaLiteSpec {
  const hasError = args.rows.some((r) => r.low !== undefined && r.high !== undefined);
  const layers: any[] = [
    {
      mark: 'bar',
      encoding: {
        x: { field: 'group', type: 'nominal', title: null, sort: null, axis: { labelAngle: 0, labelLimit: 160 } },
        xOffset: { field: 'series', type: 'nominal', sort: null },
        y: { field: 'value', type: 'quantitative', title: args.yTitle, scale: args.yDomain ? { domain: args.yDomain } : {} },
        color: { field: 'series', type: 'nominal', title: null, sort: null },
      },
    },
  ];
  if (hasError) {
    layers.push({
      mark: { type: 'errorbar', ticks: true },
      encoding: {
        x: { field: 'group', type: 'nominal', sort: null },
        xOffset: { field: 'series', type: 'nominal', sort: null },
        y: { field: 'low', type: 'quantitative', title: args.yTitle },
        y2: { field: 'high' },
      },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: args.title,
    width: 420,
    height: 240,
    data: { values: args.rows },
    layer: layers,
  } as VegaLiteSpec;
}

/** Lines of `value` over `x`, one per `series`. */
export function lineSpec(args: {
  title: string;
  rows: Array<{ x: number; value: number; series: string }>;
  xTitle: string;
  yTitle: string;
}): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: args.title,
    width: 420,
    height: 240,
    data: { values: args.rows },
    mark: 'line',
    encoding: {
      x: { field: 'x', type: 'quantitative', title: args.xTitle },
      y: { field: 'value', type: 'quantitative', title: args.yTitle },
      color: { field: 'series', type: 'nominal', title: null },
    },
  } as VegaLiteSpec;
}

/** Heat map of `value` over (`row`, `column`). */
export function heatmapSpec(args: {
  title: string;
  rows: Array<{ row: string; column: string; value: number }>;
  rowTitle: string;
  columnTitle: string;
  valueTitle: string;
}): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: args.title,
    data: { values: args.rows },
    mark: 'rect',
    encoding: {
      y: { field: 'row', type: 'nominal', title: args.rowTitle, sort: null },
      x: { field: 'column', type: 'nominal', title: args.columnTitle, sort: null },
      color: { field: 'value', type: 'quantitative', title: args.valueTitle },
      tooltip: [{ field: 'value', type: 'quantitative', format: '.3f' }],
    },
  } as VegaLiteSpec;
}

/**
 * A dose–response curve: `value` over `x` (e.g. the share of non-English data) for each `series`,
 * with its confidence band (`low`–`high`, e.g. a 95 % bootstrap CI) as a shaded area and the points
 * marked. `xScale: 'log'` spaces doses such as 1, 2, 5, 10 % evenly; `zeroLine` draws y = 0 (for
 * curves of a difference).
 */
export function doseResponseSpec(args: {
  title: string;
  rows: Array<{ x: number; value: number; low: number; high: number; series: string }>;
  xTitle: string;
  yTitle: string;
  xScale?: 'linear' | 'log';
  zeroLine?: boolean;
}): VegaLiteSpec {
  const x = { field: 'x', type: 'quantitative', title: args.xTitle, scale: { type: args.xScale ?? 'linear' }, axis: { values: [...new Set(args.rows.map((r) => r.x))] } };
  const color = { field: 'series', type: 'nominal', title: null, sort: null };
  const layers: any[] = [
    { mark: { type: 'area', opacity: 0.2 }, encoding: { x, y: { field: 'low', type: 'quantitative', title: args.yTitle }, y2: { field: 'high' }, color } },
    { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'value', type: 'quantitative', title: args.yTitle }, color } },
  ];
  if (args.zeroLine) layers.push({ data: { values: [{ zero: 0 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: 'grey' }, encoding: { y: { field: 'zero', type: 'quantitative' } } });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: args.title,
    width: 420,
    height: 260,
    data: { values: args.rows },
    layer: layers,
  } as VegaLiteSpec;
}
