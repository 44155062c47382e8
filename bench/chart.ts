import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { targetRatios, type CurvePoint } from './report.ts';

interface Anchor {
  rate: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * The latency curve as an SVG (vega-lite, rendered headless by vega: no browser, no native code):
 * p50 and p99 from enqueue to the result seen by a reader against the rate achieved, with the
 * anchor's transaction p50 and p99 and the targets (3x each) as flat lines across the same range.
 */
export async function latencyChartSvg(curve: CurvePoint[], anchor: Anchor, title: string): Promise<string> {
  const points = curve.map((p) => ({
    rate: p.figures.achievedRate,
    load: p.load,
    p50: p.figures.p50Ms,
    p99: p.figures.p99Ms,
  }));
  const rates = points.map((p) => p.rate);
  const across = (percentile: string, kind: string, ms: number) =>
    [Math.min(...rates), Math.max(...rates)].map((rate) => ({ percentile, kind, rate, ms }));
  const target = `target: ${targetRatios.latencyVsAnchor}x the anchor's`;
  const values = [
    ...points.flatMap((p) => [
      { percentile: 'p50', kind: 'service', rate: p.rate, ms: p.p50, label: `${Math.round(p.load * 100)}%` },
      { percentile: 'p99', kind: 'service', rate: p.rate, ms: p.p99 },
    ]),
    ...across('p50', 'anchor transaction', anchor.p50Ms),
    ...across('p99', 'anchor transaction', anchor.p99Ms),
    ...across('p50', target, targetRatios.latencyVsAnchor * anchor.p50Ms),
    ...across('p99', target, targetRatios.latencyVsAnchor * anchor.p99Ms),
  ];
  const x = {
    field: 'rate',
    type: 'quantitative',
    title: 'commands/s, end to end (label: share of the maximum)',
    scale: { zero: false, padding: 24 },
  } as const;
  const y = { field: 'ms', type: 'quantitative', title: 'latency, ms (log scale)', scale: { type: 'log' } } as const;
  const color = {
    field: 'percentile',
    type: 'nominal',
    title: 'percentile',
    scale: { domain: ['p50', 'p99'], range: ['#1f77b4', '#d62728'] },
  } as const;
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Latency against load: enqueue -> result seen by a reader', subtitle: title },
    width: 560,
    height: 320,
    background: 'white',
    data: { values },
    config: { legend: { labelLimit: 300 } },
    layer: [
      {
        mark: { type: 'line' },
        encoding: {
          x,
          y,
          color,
          detail: { field: 'kind' },
          strokeDash: {
            field: 'kind',
            type: 'nominal',
            title: 'line',
            scale: {
              domain: ['service', 'anchor transaction', target],
              range: [
                [1, 0],
                [8, 4],
                [2, 3],
              ],
            },
          },
        },
      },
      {
        transform: [{ filter: "datum.kind === 'service'" }],
        mark: { type: 'point', filled: true },
        encoding: { x, y, color },
      },
      {
        transform: [{ filter: 'datum.label' }],
        mark: { type: 'text', dy: -10, fontSize: 10 },
        encoding: { x, y, text: { field: 'label' } },
      },
    ],
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
