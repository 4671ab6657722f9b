// Bundles the browser side into dist/browser/: the client library (ESM, with its decode worker)
// and the demo viewer, which imports the client bundle at run time as any page would.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'browser');
mkdirSync(out, { recursive: true });

// keepNames: error classes take their name from the class (CodedError), which minifying would mangle.
const common = { bundle: true, format: 'esm', target: 'es2022', platform: 'browser', minify: true, keepNames: true, sourcemap: true, logLevel: 'warning' };

await build({
  ...common,
  entryPoints: { 'dicomstream-client': join(root, 'web-client', 'browser.ts'), 'decode-worker': join(root, 'web-client', 'worker', 'decode-worker.ts') },
  outdir: out,
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
