// No module imports itself through others: a cycle makes load order matter (a class undefined
// at first use) and ties stages together that the data flow keeps apart. Static imports,
// re-exports and dynamic import() all count; `import type` / `export type` do not (erased).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const FOLDERS = ['server', 'web-client', 'shared', 'demo'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'generated' ? [] : sources(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** `{ type A, type B }`: every named binding is a type (TypeScript erases the import). */
const onlyTypes = (clause: string): boolean => {
  const named = /^\{([^}]*)\}$/.exec(clause.trim());
  return named !== null && named[1]!.split(',').map((n) => n.trim()).filter(Boolean).every((n) => n.startsWith('type '));
};

/** What a module needs at run time: relative specifiers of value imports, as .ts paths. */
export function runtimeImports(source: string, from: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specifiers: string[] = [];
  const statement = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of code.matchAll(statement)) {
    if (m[5]) specifiers.push(m[5]);
    else if (!m[2] && !onlyTypes(m[3]!)) specifiers.push(m[4]!);
  }
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specifiers.push(m[1]!);
  return specifiers.filter((s) => s.startsWith('.')).map((s) => resolve(dirname(from), s.replace(/\.js$/, '.ts')));
}

/** A cycle in the graph as a list of modules (first = last), or undefined. */
function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

it('no import cycle among the modules of server/, web-client/, shared/ and demo/', () => {
  const files = FOLDERS.flatMap((f) => sources(join(root, f)));
  assert.ok(files.length > 50, `${files.length} modules`);
  const graph = new Map(files.map((f) => [f, runtimeImports(readFileSync(f, 'utf8'), f)]));
  const edges = [...graph.values()].reduce((n, list) => n + list.length, 0);
  assert.ok(edges > files.length, `${edges} imports`);
  const cycle = findCycle(graph);
  assert.equal(cycle, undefined, `import cycle: ${cycle?.map((f) => relative(root, f)).join(' → ')}`);
});

it('the import scan sees static, re-exported and dynamic imports and skips type-only ones', () => {
  const at = join(root, 'web-client', 'x.ts');
  const found = runtimeImports([
    "import { a } from './a.js';",
    "import type { B } from './b.js';",
    "import { type C } from './c.js';",
    "export { d } from './d.js';",
    "export type { E } from './e.js';",
    "import './f.js';",
    "const g = await import('./g.js');",
    "import { h, type H } from './h.js';",
    "import * as i from 'node:fs';",
  ].join('\n'), at).map((f) => relative(join(root, 'web-client'), f));
  assert.deepEqual(found.sort(), ['a.ts', 'd.ts', 'f.ts', 'g.ts', 'h.ts']);
});
