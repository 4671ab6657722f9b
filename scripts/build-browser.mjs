// Bundles the browser side into dist/browser/: the client library (ESM) with its decode worker,
// each codec in a chunk of its own (loaded the first time its transfer syntax appears) and the
// codecs' .wasm files in codecs/; and the demo viewer, which imports the client bundle at run
// time as any page would.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'browser');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'codecs'), { recursive: true });

// keepNames: error classes take their name from the class (CodedError), which minifying would mangle.
// fs and path: only the Node branch of the Emscripten glue uses them.
const common = {
  bundle: true, format: 'esm', target: 'es2022', platform: 'browser', minify: true, keepNames: true, sourcemap: true,
  logLevel: 'warning', external: ['fs', 'path', 'module', 'url', 'worker_threads'],
  // The glue's Node branch reads __filename and __dirname. Bundlers that build an app from this
  // bundle (webpack 5) make `typeof __filename` a string but leave the name undefined: say here,
  // once, that there is no such thing in a browser.
  define: { __filename: 'undefined', __dirname: 'undefined' },
};

await build({
  ...common,
  splitting: true,
  entryPoints: {
    'dicomstream-client': join(root, 'web-client', 'browser.ts'),
    // The Cornerstone3D loader shares the client's chunks; Cornerstone itself is the app's (types only here).
    'dicomstream-cornerstone': join(root, 'web-client', 'cornerstone', 'browser.ts'),
    'decode-worker': join(root, 'web-client', 'worker', 'decode-worker.ts'),
  },
  // Chunks sit beside the entry points: a codec finds its WASM at ./codecs/ from its own URL.
  outdir: out,
  chunkNames: '[name]-[hash]',
});

// The viewer's imports of the client resolve to the client bundle beside it, not a second copy.
const clientAsExternal = {
  name: 'client-as-external',
  setup(b) {
    b.onResolve({ filter: /web-client\/browser\.js$/ }, () => ({ path: './dicomstream-client.js', external: true }));
  },
};
await build({ ...common, entryPoints: { viewer: join(root, 'demo', 'viewer.ts') }, outdir: out, plugins: [clientAsExternal] });
copyFileSync(join(root, 'demo', 'index.html'), join(out, 'index.html'));

// The decode-only WASM builds the codec modules import.
const require = createRequire(import.meta.url);
for (const pkg of ['codec-charls', 'codec-libjpeg-turbo-8bit', 'codec-openjpeg', 'codec-openjph']) {
  const dist = dirname(require.resolve(`@cornerstonejs/${pkg}`)); // the package's main file sits in dist/
  const wasm = readdirSync(dist).filter((f) => f.endsWith('.wasm'));
  // Decode-only builds where the package has them (openjph has one build for both).
  const decodeOnly = wasm.filter((f) => f.endsWith('_decode.wasm'));
  for (const f of decodeOnly.length ? decodeOnly : wasm) copyFileSync(join(dist, f), join(out, 'codecs', f));
}
