// A fresh app with dicomstream installed as users get it: the tarball `npm pack` makes (dist/ is
// built by `pretest`), plus the app's own packages at the versions the project is tested with.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';

const PROJECT = join(import.meta.dirname, '..', '..');

/** The version of `name` the project itself has installed. */
export const versionOf = (name: string): string =>
  (JSON.parse(readFileSync(join(PROJECT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * Makes `dir`/app: package.json, index.html loading /src/main.js, the given source files under
 * src/, and dicomstream's packed tarball installed with `dependencies` (names, at the project's versions).
 */
export function packedApp(dir: string, sources: Record<string, string>, dependencies: string[]): string {
  execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: PROJECT, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack made a tarball');
  const app = join(dir, 'app');
  mkdirSync(join(app, 'src'), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'bundled-viewer', private: true, type: 'module' }));
  writeFileSync(join(app, 'index.html'), '<!doctype html><html><body><script type="module" src="/src/main.js"></script></body></html>\n');
  for (const [name, text] of Object.entries(sources)) writeFileSync(join(app, 'src', name), text);
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', '--silent', '--engine-strict=false', join(dir, tarball),
    ...dependencies.map((name) => `${name}@${versionOf(name)}`)], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] });
  return app;
}

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.map': 'application/json' };

/** A static file server for a built app's folder, on 127.0.0.1. */
export function serveFolder(root: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    const file = normalize(join(root, path === '/' ? 'index.html' : path));
    if (!file.startsWith(root + sep)) return void res.writeHead(403).end();
    readFile(file).then((body) => res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body), () => res.writeHead(404).end());
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    ok({ server, origin: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` });
  }));
}
