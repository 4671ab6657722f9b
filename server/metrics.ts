// Prometheus metrics (prom-client) on a registry of the server's own, so that several servers in
// one process (tests, embedders) do not mix their figures. Counters kept elsewhere (the session
// stats, the caches, the catalogue) are read when /metrics is scraped.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { errorCodeName } from '../shared/protocol.js';

export interface MetricSources {
  connections(): number;
  stats(): { framesSent: number; bytesSent: number; requestsCancelled: number; httpStreams: number };
  frameCache(): { hits: number; misses: number; evictions: number; bytes: number };
  indexCache(): { hits: number; misses: number; evictions: number; bytes: number };
  index(): { studies: number; series: number; instances: number; frames: number; files: number; skipped: number };
}

export interface ServerMetrics {
  registry: Registry;
  connectionOpened(): void;
  connectionRefused(reason: string): void;
  error(code: number): void;
  frameSent(seconds: number): void;
}

/** A counter that follows a total kept elsewhere: each scrape adds what it grew by. */
function followingCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let reported = 0;
  new Counter({
    name, help, registers: [registry],
    collect() {
      const now = read();
      if (now > reported) this.inc(now - reported);
      reported = Math.max(reported, now);
    },
  });
}

export function createMetrics(sources: MetricSources): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'dicomstream_' });
  new Gauge({ name: 'dicomstream_connections', help: 'Open WebSocket connections.', registers: [registry], collect() { this.set(sources.connections()); } });
  new Gauge({ name: 'dicomstream_http_streams', help: 'Connections whose server messages go over an HTTP stream.', registers: [registry], collect() { this.set(sources.stats().httpStreams); } });
  const opened = new Counter({ name: 'dicomstream_connections_total', help: 'WebSocket connections accepted.', registers: [registry] });
  const refused = new Counter({ name: 'dicomstream_connections_refused_total', help: 'Connections refused, by reason.', labelNames: ['reason'], registers: [registry] });
  followingCounter(registry, 'dicomstream_frames_sent_total', 'Frames sent whole.', () => sources.stats().framesSent);
  followingCounter(registry, 'dicomstream_bytes_sent_total', 'Frame payload bytes sent.', () => sources.stats().bytesSent);
  followingCounter(registry, 'dicomstream_requests_cancelled_total', 'Frame requests the client cancelled while frames of them were still to send.', () => sources.stats().requestsCancelled);
  const latency = new Histogram({
    name: 'dicomstream_frame_latency_seconds', help: 'From the request that asked for a frame to its last chunk handed to the socket.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry],
  });
  const errors = new Counter({ name: 'dicomstream_errors_total', help: 'Error replies sent, by code.', labelNames: ['code'], registers: [registry] });
  for (const [cache, read] of [['frame', sources.frameCache], ['index', sources.indexCache]] as const) {
    followingCounter(registry, `dicomstream_${cache}_cache_hits_total`, `${cache} cache hits.`, () => read().hits);
    followingCounter(registry, `dicomstream_${cache}_cache_misses_total`, `${cache} cache misses.`, () => read().misses);
    followingCounter(registry, `dicomstream_${cache}_cache_evictions_total`, `${cache} cache evictions.`, () => read().evictions);
    new Gauge({ name: `dicomstream_${cache}_cache_bytes`, help: `Bytes in the ${cache} cache.`, registers: [registry], collect() { this.set(read().bytes); } });
  }
  const index = new Gauge({ name: 'dicomstream_index_entries', help: 'What the index holds, by kind.', labelNames: ['kind'], registers: [registry],
    collect() {
      const i = sources.index();
      for (const kind of ['studies', 'series', 'instances', 'frames', 'files', 'skipped'] as const) this.set({ kind }, i[kind]);
    } });
  void index;
  return {
    registry,
    connectionOpened: () => opened.inc(),
    connectionRefused: (reason) => refused.inc({ reason }),
    error: (code) => errors.inc({ code: errorCodeName(code) }),
    frameSent: (seconds) => latency.observe(seconds),
  };
}
