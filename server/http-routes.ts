// The plain HTTP side: health (`/healthz`), readiness (`/readyz`), Prometheus metrics
// (`/metrics`) and the demo viewer with its bundles, under a base path. A handler that answers
// its own paths and says false to the rest, so it can sit in front of an embedder's routes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LateMetrics } from './late-metrics.js';
import { staticFiles } from './static-files.js';

export interface HttpRoutesOptions {
  /** Where the routes live: '' (the root) or a path such as '/dicomstream'. */
  base: string;
  serverName: string;
  ready: () => boolean;
  metrics: LateMetrics;
  /** Serve the viewer page and bundles too. */
  viewer: boolean;
}

/** Answers one of its routes and returns true, or returns false and leaves the request alone. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function httpRoutes(options: HttpRoutesOptions): RequestHandler {
  const { base } = options;
  const serveStatic = options.viewer ? staticFiles() : () => false;
  return (req, res) => {
    const full = (req.url ?? '/').split('?')[0]!;
    if (base && full !== base && !full.startsWith(base + '/')) return false;
    const path = full.slice(base.length) || '/';
    if (path === '/healthz') return plain(res, 200, 'ok\n');
    if (path === '/readyz') return options.ready() ? plain(res, 200, 'ready\n') : plain(res, 503, 'not ready\n');
    if (path === '/metrics') {
      options.metrics.text().then(({ contentType, text }) => {
        res.writeHead(200, { 'content-type': contentType });
        res.end(text);
      }, () => plain(res, 500, 'metrics failed\n'));
      return true;
    }
    if (serveStatic(req, res, path)) return true;
    if (!options.viewer) return false;
    if (path === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return true;
    }
    if (path === '/') return plain(res, 200, `${options.serverName}: connect a WebSocket to this address (the viewer is not built: npm run build).\n`);
    return false;
  };
}

function plain(res: ServerResponse, status: number, text: string): true {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
  return true;
}
