// Serves the demo viewer and the browser bundles (dist/browser/) from the server's HTTP port:
// `/` is the viewer page, `/assets/<path>` the bundles, their chunks and the codecs' WASM. Only
// files present at start are served, by exact path, so no request can reach anything else.
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json',
  '.wasm': 'application/wasm', '.css': 'text/css; charset=utf-8',
};

/** dist/browser, from the compiled server (dist/server) or from the sources (server/). */
export function browserDir(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', 'browser'), join(here, '..', 'dist', 'browser')].find((d) => existsSync(join(d, 'index.html')));
}

/** Serves `path` (the request's, or one below a base path) when it is one of the files; else false. */
export function staticFiles(dir = browserDir()): (req: IncomingMessage, res: ServerResponse, path?: string) => boolean {
  const names = new Set(dir ? (readdirSync(dir, { recursive: true }) as string[]).map((n) => n.split('\\').join('/')) : []);
  return (req, res, path = (req.url ?? '/').split('?')[0]!) => {
    const name = path === '/' || path === '/index.html' ? 'index.html' : path.startsWith('/assets/') ? path.slice('/assets/'.length) : undefined;
    if (!dir || !name || !names.has(name) || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    readFile(join(dir, name)).then((body) => {
      res.writeHead(200, {
        'content-type': types[extname(name)] ?? 'application/octet-stream',
        'content-length': body.length,
        // Chunks carry a content hash in their name; the rest may change with a rebuild.
        'cache-control': /-[A-Z0-9]{8}\.js$/.test(name) ? 'public, max-age=31536000, immutable' : name === 'index.html' ? 'no-cache' : 'public, max-age=300',
        'x-content-type-options': 'nosniff',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    }, () => {
      res.writeHead(500);
      res.end();
    });
    return true;
  };
}
