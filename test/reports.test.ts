// What the reports of `scan`, `index` and `serve` leave out, on real files: every entry the folder
// walk does not index (a FIFO, a dangling link, a link loop, a folder that cannot be read, a link
// leading outside) is listed with a reason, and the three commands count the same entries;
// `scan` takes --follow-symlinks and --index-dir; the writer removes the temp files a killed
// writer left; and names with newlines or escape sequences print on one line, escaped.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger, startServer, type RunningServer, type ServerOptions } from '../server/index.js';
import { statFiles } from '../server/index/refresh.js';
import { LOCK_FILE } from '../server/index/index-lock.js';
import { printable } from '../server/printable.js';
import { smallImage, writeTree } from '../server/sample/tree.js';
import { listing } from './helpers/folder-listing.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server', 'cli.js');

interface Run { status: number | null; stdout: string; stderr: string }

/** Runs the built CLI; `prefix`: a command it runs under (setpriv). */
function run(args: string[], prefix: string[] = []): Run {
  const [command, ...rest] = [...prefix, process.execPath, cli, ...args];
  const r = spawnSync(command!, rest, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[], prefix: string[] = []): Run {
  const r = run(args, prefix);
  assert.equal(r.status, 0, r.stderr);
  return r;
}

interface JsonReport { files: Array<{ path: string }>; skipped: Array<{ path: string; code: string; reason: string }>; duplicates: unknown[] }

const scanJson = (args: string[], prefix: string[] = []): JsonReport => JSON.parse(ok(['scan', ...args, '--json'], prefix).stdout) as JsonReport;

/** The counts of a text report's first line. */
function counts(text: string): { files: number; instances: number; skipped: number; duplicates: number } {
  const m = /^indexed .*: (\d+) files, \d+ studies, \d+ series, (\d+) instances, \d+ frames; (\d+) skipped, (\d+) duplicates/m.exec(text);
  assert.ok(m, `a summary line in:\n${text}`);
  return { files: Number(m[1]), instances: Number(m[2]), skipped: Number(m[3]), duplicates: Number(m[4]) };
}

/** `path: reason [CODE]` of each skipped line of a text report. */
const skippedLines = (text: string) => text.split('\n').filter((l) => l.startsWith('  skipped ') && !l.startsWith('  skipped by reason'));

async function serve(root: string, options: Partial<ServerOptions> = {}): Promise<RunningServer> {
  return startServer({ root, host: '127.0.0.1', port: 0, log: createLogger('silent'), watch: false, parseWorkers: 0, ...options });
}

/** A command prefix under which this process's user cannot read a mode-000 folder; undefined: none here. */
function withoutOverride(probe: string): string[] | undefined {
  if (process.getuid?.() !== 0) return [];
  // root reads everything: drop the two capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
  const prefix = ['setpriv', '--bounding-set=-dac_override,-dac_read_search'];
  const r = spawnSync(prefix[0]!, [...prefix.slice(1), 'ls', probe]);
  return r.status !== 0 && r.error === undefined ? prefix : undefined;
}

describe('entries the walk leaves out', () => {
  let base = '';
  let root = '';
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'dicomstream-reports-'));
    root = join(base, 'archive');
    mkdirSync(join(base, 'outside'));
    writeFileSync(join(base, 'outside', 'elsewhere.dcm'), smallImage(9, 9, 9, { salt: 'outside' }));
    writeTree(root, 4, { perSeries: 4, salt: 'reports' });
    writeFileSync(join(root, 'notes.txt'), 'not DICOM');
    const fifo = spawnSync('mkfifo', [join(root, 'pipe')]);
    assert.equal(fifo.status, 0, 'mkfifo makes a FIFO');
    symlinkSync('missing.dcm', join(root, 'dangling.dcm'));
    symlinkSync('self', join(root, 'self'));
    mkdirSync(join(root, 'sub'));
    symlinkSync('..', join(root, 'sub', 'up'));
    symlinkSync(join(base, 'outside', 'elsewhere.dcm'), join(root, 'out.dcm'));
    symlinkSync('pipe', join(root, 'to-pipe'));
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  const expected = [
    ['dangling.dcm', 'DANGLING_LINK', /symbolic link to missing\.dcm, which does not exist/],
    ['notes.txt', 'NOT_DICOM', /not a DICOM file/],
    ['out.dcm', 'OUTSIDE_ROOT', /outside the served folder/],
    ['pipe', 'NOT_A_FILE', /a FIFO \(named pipe\), not a regular file/],
    ['self', 'LINK_LOOP', /a loop of links/],
    ['sub/up', 'LINK_LOOP', /a folder that contains it: a loop/],
    ['to-pipe', 'NOT_A_FILE', /symbolic link to a FIFO/],
  ] as const;

  it('the walk reports each with its reason, and never opens the FIFO', async () => {
    // Opening the FIFO would block this test for ever: the walk only stats it.
    const { stamps, refused } = await statFiles(root);
    assert.deepEqual(stamps.map((s) => s.path.slice(root.length + 1)), ['notes.txt', ...[0, 1, 2, 3].map((i) => `study-0/series-0/${i}.dcm`)]);
    const byPath = new Map(refused.map((r) => [r.file.path.slice(root.length + 1), r]));
    for (const [path, code, reason] of expected.filter(([p]) => p !== 'notes.txt')) {
      assert.equal(byPath.get(path)?.code, code, path);
      assert.match(byPath.get(path)!.reason, reason, path);
    }
    assert.equal(refused.length, expected.length - 1);
  });

  it('scan (text and --json), index and serve list the same entries and count the same files', async () => {
    const scanText = ok(['scan', root, '--index-dir', join(base, 'scan-index')]).stdout;
    const json = scanJson([root, '--index-dir', join(base, 'scan-index')]);
    const indexText = ok(['index', root, '--index-dir', join(base, 'index'), '--parse-workers', '0']).stdout;
    const server = await serve(root, { indexDir: join(base, 'serve-index') });
    try {
      assert.deepEqual(json.skipped.map((s) => [s.path, s.code]), expected.map(([p, c]) => [p, c]));
      for (const [path, code, reason] of expected) assert.match(json.skipped.find((s) => s.path === path)!.reason, reason, `${path} ${code}`);
      const fromServe = server.index.skipped.map((s) => [s.path, s.code]);
      assert.deepEqual(fromServe, expected.map(([p, c]) => [p, c]));
      for (const text of [scanText, indexText]) {
        const lines = skippedLines(text);
        assert.deepEqual(lines.map((l) => /^ {2}skipped (.*?): /.exec(l)![1]), expected.map(([p]) => p));
        for (const [i, [, code, reason]] of expected.entries()) {
          assert.match(lines[i]!, reason);
          assert.ok(lines[i]!.endsWith(`[${code}]`), lines[i]);
        }
      }
      // One count everywhere: entries found = instances + duplicates + skipped.
      const total = 4 + expected.length;
      assert.deepEqual(counts(scanText), { files: total, instances: 4, skipped: expected.length, duplicates: 0 });
      assert.deepEqual(counts(indexText), counts(scanText));
      assert.equal(json.files.length + json.skipped.length, total);
      assert.equal(server.index.files, total);
    } finally {
      await server.close();
    }
  });

  it('a folder that cannot be read is reported (UNREADABLE), its files not silently missing', () => {
    const locked = join(root, 'locked');
    mkdirSync(locked);
    writeFileSync(join(locked, 'hidden.dcm'), smallImage(0, 0, 99, { salt: 'locked' }));
    chmodSync(locked, 0o000);
    try {
      const prefix = withoutOverride(locked);
      assert.ok(prefix, 'a way to run the walk without root\'s permission to read everything (util-linux setpriv, installed by .ci/run)');
      // The commands run for real, as a user the folder is closed to.
      const json = scanJson([root, '--index-dir', join(base, 'locked-scan-index')], prefix);
      const entry = json.skipped.find((s) => s.path === 'locked');
      assert.equal(entry?.code, 'UNREADABLE');
      assert.match(entry!.reason, /^folder cannot be read \(EACCES: permission denied\): none of its files are indexed$/);
      assert.ok(!json.files.some((f) => f.path.includes('hidden')));
      const indexText = ok(['index', root, '--index-dir', join(base, 'locked-index'), '--parse-workers', '0'], prefix).stdout;
      assert.match(indexText, /^ {2}skipped locked: folder cannot be read \(EACCES: permission denied\): none of its files are indexed \[UNREADABLE\]$/m);
      assert.equal(counts(indexText).files, json.files.length + json.skipped.length);
    } finally {
      chmodSync(locked, 0o755);
      rmSync(locked, { recursive: true });
    }
  });

  it('scan --follow-symlinks indexes a link leading outside, as serve --follow-symlinks does', async () => {
    const json = scanJson([root, '--follow-symlinks', '--index-dir', join(base, 'follow-index')]);
    assert.ok(json.files.some((f) => f.path === 'out.dcm'));
    assert.ok(!json.skipped.some((s) => s.code === 'OUTSIDE_ROOT'));
    const text = ok(['index', root, '--follow-symlinks', '--index-dir', join(base, 'follow-index'), '--parse-workers', '0']).stdout;
    assert.equal(counts(text).instances, 5);
  });
});

describe('scan --index-dir', () => {
  let root = '';
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'dicomstream-scan-index-'));
    writeTree(root, 6, { perSeries: 3, salt: 'scan-index' });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('reads the saved index (unchanged files not parsed), leaves its folder out of the walk, and writes nothing, even with a writer holding the lock', () => {
    // The index inside the folder, under a name the walk does not skip by itself.
    const indexDir = join(root, 'index');
    ok(['index', root, '--index-dir', indexDir, '--parse-workers', '0']);
    // Without --index-dir, scan walks into it: its files are not DICOM. That is the count serve does not have.
    const unaware = counts(ok(['scan', root]).stdout);
    assert.ok(unaware.skipped > 0);
    // A live writer holds the lock meanwhile (this process).
    writeFileSync(join(indexDir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: hostname(), command: 'serve', since: new Date().toISOString() }));
    const lockedListing = listing(indexDir);
    const text = ok(['scan', root, '--index-dir', indexDir]).stdout;
    assert.deepEqual(counts(text), { files: 6, instances: 6, skipped: 0, duplicates: 0 });
    assert.match(text, /\(0 parsed, 6 from the saved index\)/);
    const json = scanJson([root, '--index-dir', indexDir]);
    assert.deepEqual(json.files.map((f) => f.path), scanJson([root, '--index-dir', join(root, 'nothing-saved-here')]).files.map((f) => f.path));
    assert.deepEqual(listing(indexDir), lockedListing, 'scan wrote nothing, and left the lock as it was');
    assert.ok(!existsSync(join(root, 'nothing-saved-here')), 'nor made an index folder');
  });

  it('refuses an index in a bucket, and a folder that does not exist', () => {
    const bucket = run(['scan', root, '--index-dir', 's3://bucket/prefix']);
    assert.equal(bucket.status, 1);
    assert.match(bucket.stderr, /BAD_OPTION: scan reads a saved index in a folder/);
    const missing = run(['scan', join(root, 'missing')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /NO_SUCH_FOLDER/);
  });
});

describe('temp files left by a killed writer', () => {
  let root = '';
  let indexDir = '';
  const dead = 999_999_999; // no such pid: a writer gone
  const plant = () => {
    const series = readdirSync(join(indexDir, 'series'))[0]!;
    const seriesFile = readdirSync(join(indexDir, 'series', series)).find((f) => f.endsWith('.dsix'))!;
    const temps = [`catalogue.dsix.${dead}.7.tmp`, join('series', series, `${seriesFile}.${dead}.8.tmp`)];
    for (const t of temps) writeFileSync(join(indexDir, t), 'half a file');
    writeFileSync(join(indexDir, 'notes.tmp'), 'not a temp file of the index');
    writeFileSync(join(indexDir, `notes.${dead}.1.tmp`), 'another program\'s temp file');
    return temps;
  };
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'dicomstream-temps-'));
    indexDir = join(root, '.dicomstream');
    writeTree(root, 4, { perSeries: 2, salt: 'temps' });
    ok(['index', root, '--parse-workers', '0']);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('dicomstream index removes them at start and says how many', () => {
    const temps = plant();
    const r = ok(['index', root, '--parse-workers', '0']);
    assert.match(r.stderr, new RegExp(`removed 2 temporary index files left by an interrupted writer in ${indexDir}`));
    for (const t of temps) assert.ok(!existsSync(join(indexDir, t)), t);
    assert.ok(existsSync(join(indexDir, 'notes.tmp')), 'other files are left alone');
    assert.ok(existsSync(join(indexDir, `notes.${dead}.1.tmp`)), 'other programs\' temp files too');
  });

  it('a writing server removes them and logs how many; a read-only replica leaves them', async () => {
    const temps = plant();
    const lines: string[] = [];
    const replica = await serve(root, { indexDir, readOnlyIndex: true, log: createLogger('info', (l) => lines.push(l)) });
    await replica.close();
    for (const t of temps) assert.ok(existsSync(join(indexDir, t)), `the replica left ${t}`);
    const writer = await serve(root, { indexDir, log: createLogger('info', (l) => lines.push(l)) });
    await writer.close();
    for (const t of temps) assert.ok(!existsSync(join(indexDir, t)), t);
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; files?: number }).filter((l) => /temporary index files/.test(l.msg));
    assert.deepEqual(logged.map((l) => [l.msg, l.files]), [['removed temporary index files left by an interrupted writer', 2]]);
  });
});

describe('names printed escaped', () => {
  it('printable: control characters, separators and bidirectional overrides escaped; other text as it is', () => {
    assert.equal(printable('study-0/series 1/äöü 日本.dcm'), 'study-0/series 1/äöü 日本.dcm');
    assert.equal(printable('a\nb\rc\td\\e'), 'a\\nb\\rc\\td\\\\e');
    assert.equal(printable('\x1b[31mred\x00\x7f\x9b'), '\\x1b[31mred\\x00\\x7f\\x9b');
    assert.equal(printable('x\u2028y\u202ez'), 'x\\u2028y\\u202ez');
  });

  it('a file name with a newline or an escape sequence is one line of the report, escaped; no line can be forged', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dicomstream-names-'));
    try {
      const forged = 'a\n  skipped forged.dcm: fake [NOT_DICOM]';
      writeFileSync(join(root, forged), 'junk');
      writeFileSync(join(root, 'red\x1b[31m.dcm'), 'junk');
      mkdirSync(join(root, 'line\nbreak'));
      writeFileSync(join(root, 'line\nbreak', '0.dcm'), smallImage(0, 0, 0, { salt: 'names' }));
      writeFileSync(join(root, 'line\nbreak', 'copy.dcm'), smallImage(0, 0, 0, { salt: 'names' }));
      for (const args of [['scan', root], ['index', root, '--parse-workers', '0']]) {
        const out = ok(args).stdout;
        assert.ok(!out.includes('\x1b'), 'no escape sequence reaches the terminal');
        const lines = out.trimEnd().split('\n');
        assert.deepEqual(skippedLines(out), [
          '  skipped a\\n  skipped forged.dcm: fake [NOT_DICOM]: not a DICOM file: too short [NOT_DICOM]',
          '  skipped red\\x1b[31m.dcm: not a DICOM file: too short [NOT_DICOM]',
        ]);
        assert.ok(lines.includes('  duplicate line\\nbreak/copy.dcm: same SOP Instance UID as line\\nbreak/0.dcm, which is served'), out);
        assert.equal(counts(out).skipped, 2);
        assert.ok(lines.every((l) => /^(indexed |index saved in | {2}(skipped|duplicate|note) )/.test(l)), `only report lines:\n${out}`);
      }
      // An error naming a path, and the JSON logs.
      const missing = run(['scan', join(root, 'no\nsuch')]);
      assert.equal(missing.stderr.trimEnd().split('\n').length, 1);
      assert.match(missing.stderr, /no\\nsuch/);
      const logged: string[] = [];
      createLogger('info', (l) => logged.push(l)).warn('index file not trusted', { file: join(root, forged) });
      assert.equal(logged.length, 1);
      assert.equal((JSON.parse(logged[0]!) as { file: string }).file, join(root, forged));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
