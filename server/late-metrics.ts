// Metrics whose module (and prom-client, ~60 ms to load) loads once the server listens, off the
// path to the first frame; what happens before is recorded and replayed then.
import type { MetricSources, ServerMetrics } from './metrics.js';

export type MetricEvents = Pick<ServerMetrics, 'connectionOpened' | 'connectionRefused' | 'error' | 'frameSent'>;

export interface LateMetrics extends MetricEvents {
  /** The metrics, once loaded (after `load()`). */
  ready: Promise<ServerMetrics>;
  /** Starts loading them (the first scrape, or a few seconds after start). */
  load(): void;
  /** Prometheus text of every metric. */
  text(): Promise<{ contentType: string; text: string }>;
}

/** Events kept at most before the metrics load (a flood of refusals must not grow memory). */
const MAX_EARLY_EVENTS = 100_000;

export function lateMetrics(sources: MetricSources): LateMetrics {
  let metrics: ServerMetrics | undefined;
  const early: Array<(m: ServerMetrics) => void> = [];
  // Once loaded, events go straight through (no closure per frame sent).
  const later = (event: (m: ServerMetrics) => void) => { if (early.length < MAX_EARLY_EVENTS) early.push(event); };
  let start!: () => void;
  const started = new Promise<void>((resolve) => { start = resolve; });
  const ready = started.then(() => import('./metrics.js')).then(({ createMetrics }) => {
    metrics = createMetrics(sources);
    for (const event of early.splice(0)) event(metrics);
    return metrics;
  });
  return {
    ready,
    load: () => start(),
    text: () => {
      start();
      return ready.then(async (m) => ({ contentType: m.registry.contentType, text: await m.registry.metrics() }));
    },
    connectionOpened: () => (metrics ? metrics.connectionOpened() : later((m) => m.connectionOpened())),
    connectionRefused: (reason) => (metrics ? metrics.connectionRefused(reason) : later((m) => m.connectionRefused(reason))),
    error: (code) => (metrics ? metrics.error(code) : later((m) => m.error(code))),
    frameSent: (seconds) => (metrics ? metrics.frameSent(seconds) : later((m) => m.frameSent(seconds))),
  };
}
