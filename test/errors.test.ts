// One table of errors (shared/errors.ts): every code thrown or sent is in it, the wire codes are
// proto's, and the README's table is the generated one.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ERRORS, errorsTableMarkdown } from '../shared/errors.js';
import { ErrorCode, ProtocolError } from '../shared/protocol.js';
import { generatedBlock, README } from '../scripts/docs-tables.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'generated' ? [] : sources(path);
    return /\.ts$/.test(name) && !/\.d\.ts$/.test(name) ? [path] : [];
  });
}
const code = ['server', 'web-client', 'shared', 'demo'].flatMap((d) => sources(join(root, d)));

describe('errors table', () => {
  it('the README table is the generated one (node --import tsx scripts/docs-tables.ts)', () => {
    assert.equal(generatedBlock(readFileSync(README, 'utf8'), 'errors'), errorsTableMarkdown());
  });

  it('every wire ErrorCode is in the table as a wire code, and no wire code is missing from proto', () => {
    const wire = Object.keys(ErrorCode).filter((k) => Number.isNaN(Number(k)) && k !== 'ERROR_CODE_UNSPECIFIED');
    for (const name of wire) assert.equal(ERRORS[name as keyof typeof ERRORS]?.surface, 'wire', name);
    const tableWire = Object.entries(ERRORS).filter(([, e]) => e.surface === 'wire').map(([k]) => k);
    assert.deepEqual(tableWire.sort(), wire.sort());
  });

  it('every code an error is made with is in the table', () => {
    const made = new Set<string>();
    for (const file of code) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/new (?:\w*Error)\(\s*'([A-Z][A-Z0-9_]+)'/g)) made.add(m[1]!);
      for (const m of text.matchAll(/(?:Code|code)\s*(?:===|!==|:)\s*'([A-Z][A-Z0-9_]+)'/g)) made.add(m[1]!);
    }
    assert.ok(made.size > 20, `found only ${made.size} codes: the scan is broken`);
    // Node's own codes (ERR_*, ENOENT, EPERM…) are compared with, not made.
    const missing = [...made].filter((c) => !(c in ERRORS) && !c.startsWith('ERR_') && !/^E[A-Z]+$/.test(c));
    assert.deepEqual(missing, [], 'codes made but not in shared/errors.ts');
  });

  it('nothing throws a bare Error across the public API (server, client, shared)', () => {
    const bare = code.filter((f) => !f.includes(`${join('server', 'sample')}`))
      .flatMap((f) => readFileSync(f, 'utf8').split('\n').map((line, i) => ({ f, i, line })))
      .filter(({ line }) => /throw new Error\(/.test(line))
      .map(({ f, i }) => `${f.slice(root.length + 1)}:${i + 1}`);
    assert.deepEqual(bare, []);
  });

  it('a wire error keeps its table code; one a newer server sends that this version lacks is INTERNAL, its number kept', () => {
    const known = new ProtocolError(ErrorCode.FRAME_UNREADABLE, 'gone', 7);
    assert.deepEqual([known.code, known.errorCode, known.requestId, known.name], ['FRAME_UNREADABLE', ErrorCode.FRAME_UNREADABLE, 7, 'ProtocolError']);
    const future = new ProtocolError(999, 'something new');
    assert.deepEqual([future.code, future.errorCode], ['INTERNAL', 999]);
  });
});
