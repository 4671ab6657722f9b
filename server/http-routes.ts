// The plain HTTP side: health (`/healthz`), readiness (`/readyz`), Prometheus metrics
// (`/metrics`) and the demo viewer with its bundles, under a base path. A handler that answers
// its own paths and says false to the rest, so it can sit in front of an embedder's routes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
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
    const path = pathUnder(base, req);
    if (path === undefined) return false;
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

/** Seconds a client is told to wait (Retry-After) while the server indexes before serving. */
const RETRY_WHILE_STARTING_S = 5;

/** Progress of the first indexing, for /readyz while it runs. */
export interface StartingProgress { done: number; total: number }

/**
 * The routes while the first indexing runs: /healthz 200 (the process is alive), /readyz 503 with
 * the progress, and 503 with Retry-After for everything else under the base.
 */
export function startingRoutes(base: string, progress: () => StartingProgress | undefined): RequestHandler {
  return (req, res) => {
    const path = pathUnder(base, req);
    if (path === undefined) return false;
    if (path === '/healthz') return plain(res, 200, 'ok\n');
    const p = progress();
    const text = `not ready: indexing${p ? ` (${p.done} of ${p.total} files)` : ''}\n`;
    res.setHeader('retry-after', String(RETRY_WHILE_STARTING_S));
    return plain(res, 503, text);
  };
}

/** A WebSocket upgrade while the first indexing runs: 503 with Retry-After (clients retry). */
export function refuseUpgradeWhileStarting(socket: Duplex): void {
  socket.end(`HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${RETRY_WHILE_STARTING_S}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** The request's path below `base` ('/' for the base itself), or undefined when it is not under it. */
function pathUnder(base: string, req: IncomingMessage): string | undefined {
  const full = (req.url ?? '/').split('?')[0]!;
  if (base && full !== base && !full.startsWith(base + '/')) return undefined;
  return full.slice(base.length) || '/';
}

function plain(res: ServerResponse, status: number, text: string): true {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
  return true;
}
