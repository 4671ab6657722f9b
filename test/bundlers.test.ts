// dicomstream/client inside apps built by the bundlers viewers are built with: the package as
// `npm pack` makes it, installed into a fresh app whose page connects to a real server and
// decodes a frame of each WASM codec (JPEG baseline, JPEG-LS, JPEG 2000, HTJ2K) in the client's
// decode worker, in Chromium, with Vite's dev server, a Vite build and a webpack 5 build, and no
// bundler configuration at all. The pixels must equal the reference decodes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { build as viteBuild, createServer as viteServer } from 'vite';
import webpack from 'webpack';
import { createLogger, startServer, type RunningServer } from '../server/index.js';
import { withBrowser } from './helpers/browser.js';
import { filesDir, manifest } from './helpers/corpus.js';
import { servedFiles } from './helpers/server.js';

const PROJECT = join(import.meta.dirname, '..');

/** The app's page: decodes frame 1 of each instance named in its query, reports their sha256. */
const MAIN = `import { connect, decodeFrame } from 'dicomstream/client';
const params = new URLSearchParams(location.search);
async function run() {
  const client = await connect(params.get('server'));
  const out = {};
  for (const uid of JSON.parse(params.get('uids'))) {
    const frame = await client.getFrame(uid, 1);
    const { pixels } = await decodeFrame(frame.bytes, frame.instance);
    const digest = await crypto.subtle.digest('SHA-256', new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength));
    out[uid] = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }
  client.close();
  return out;
}
run().then((r) => { document.body.dataset.result = JSON.stringify(r); }, (e) => { document.body.dataset.error = String(e && e.stack || e); });
`;

/** A transfer syntax decoded by each WASM codec. */
const CODEC_SYNTAXES: Record<string, string[]> = {
  'libjpeg-turbo': ['1.2.840.10008.1.2.4.50'],
  charls: ['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81'],
  openjpeg: ['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91'],
  openjph: ['1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203'],
};

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.map': 'application/json' };

/** A static file server for a built app's folder, on 127.0.0.1. */
function serveFolder(root: string): Promise<{ server: Server; origin: string }> {
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

describe('the client in bundled apps', () => {
  let dir: string;
  let app: string;
  let dicomstream: RunningServer;
  /** Per instance asked for: the reference sha256 of its decoded frame 1. */
  const expected = new Map<string, string>();
  /** The codecs those instances need. */
  const codecs: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-bundlers-'));
    // The package as published (dist/ is built by `pretest`), installed into a fresh app.
    execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: PROJECT, stdio: ['ignore', 'ignore', 'inherit'] });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack made a tarball');
    app = join(dir, 'app');
    mkdirSync(join(app, 'src'), { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'bundled-viewer', private: true, type: 'module' }));
    writeFileSync(join(app, 'index.html'), '<!doctype html><html><body><script type="module" src="/src/main.js"></script></body></html>\n');
    writeFileSync(join(app, 'src', 'main.js'), MAIN);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', '--silent', join(dir, tarball)], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] });

    // One corpus file for each codec the corpus has frames of (it has no HTJ2K), alone in a folder
    // so that no duplicate of its instance is served instead.
    const files = join(dir, 'files');
    mkdirSync(files);
    for (const [codec, syntaxes] of Object.entries(CODEC_SYNTAXES)) {
      const entry = manifest.files.find((m) => syntaxes.includes(m.transfer_syntax_uid ?? '') && m.frames?.[0]?.sha256);
      if (!entry) continue;
      copyFileSync(join(filesDir, entry.file), join(files, entry.file));
      expected.set(entry.sop_instance_uid!, entry.frames![0]!.sha256);
      codecs.push(codec);
    }
    assert.ok(codecs.length >= 3, `corpus files for ${codecs.join(', ')}`);
    dicomstream = await startServer({ root: files, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false });
    const served = await servedFiles(dicomstream.catalogue);
    assert.equal(served.length, expected.size, 'every chosen file served');
  });

  after(async () => {
    await dicomstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Opens the app at `origin` in Chromium and returns what its page decoded. */
  async function decodedIn(origin: string, page = '/'): Promise<Record<string, string>> {
    return withBrowser(async (context) => {
      const tab = await context.newPage();
      const query = new URLSearchParams({ server: dicomstream.url, uids: JSON.stringify([...expected.keys()]) });
      await tab.goto(`${origin}${page}?${query}`);
      await tab.waitForFunction(() => document.body.dataset.result !== undefined || document.body.dataset.error !== undefined, null, { timeout: 60_000 });
      const error = await tab.evaluate(() => document.body.dataset.error);
      assert.equal(error, undefined, `the page failed: ${error}`);
      return JSON.parse((await tab.evaluate(() => document.body.dataset.result))!) as Record<string, string>;
    });
  }

  const assertReference = (got: Record<string, string>) => {
    for (const [uid, sha] of expected) assert.equal(got[uid], sha, `instance ${uid} decoded to the reference`);
  };

  it('works in a Vite dev server, worker and WASM found', async () => {
    const server = await viteServer({ root: app, logLevel: 'silent', configFile: false, server: { host: '127.0.0.1', port: 0, strictPort: false } });
    await server.listen();
    try {
      const address = server.httpServer?.address();
      assert.ok(address && typeof address === 'object');
      assertReference(await decodedIn(`http://127.0.0.1:${address.port}`));
    } finally {
      await server.close();
    }
  });

  it('works in a Vite build: the worker and every codec\'s WASM are emitted and load', async () => {
    const outDir = join(app, 'dist-vite');
    await viteBuild({ root: app, logLevel: 'silent', configFile: false, build: { outDir, emptyOutDir: true } });
    const emitted = readdirSync(join(outDir, 'assets'));
    for (const name of ['decode-worker', 'openjpegwasm_decode', 'openjphjs', 'charlswasm_decode', 'libjpegturbowasm_decode']) {
      assert.ok(emitted.some((f) => f.startsWith(name)), `${name} emitted: ${emitted.join(', ')}`);
    }
    const { server, origin } = await serveFolder(outDir);
    try {
      assertReference(await decodedIn(origin));
    } finally {
      server.close();
    }
  });

  it('works in a webpack 5 build, with no configuration but the entry', async () => {
    const outDir = join(app, 'dist-webpack');
    const stats = await new Promise<webpack.Stats>((ok, fail) => {
      const compiler = webpack({ mode: 'production', context: app, entry: './src/main.js', output: { path: outDir, clean: true }, performance: { hints: false } });
      compiler.run((err, result) => compiler.close(() => (err || !result ? fail(err ?? new Error('no stats')) : ok(result))));
    });
    assert.equal(stats.hasErrors(), false, stats.toString({ all: false, errors: true }));
    assert.equal(readdirSync(outDir).filter((f) => f.endsWith('.wasm')).length, 4, 'the four codecs\' WASM emitted');
    writeFileSync(join(outDir, 'index.html'), '<!doctype html><html><body><script src="main.js"></script></body></html>\n');
    const { server, origin } = await serveFolder(outDir);
    try {
      assertReference(await decodedIn(origin));
    } finally {
      server.close();
    }
  });
});
