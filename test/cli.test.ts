// The command line as an operator runs it: `dicomstream serve DIR` prints a summary and the
// listening line, serves, and stops cleanly on SIGTERM; `dicomstream index` builds and refreshes
// the saved index with progress and a summary; `dicomstream scan --json` reports.
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { connect } from '../web-client/index.js';
import { writeTree, smallImage } from '../server/sample/tree.js';
import { expectation, filesDir, manifest } from './helpers/corpus.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server', 'cli.js');

function spawnSyncCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('command line', () => {
  it('serve: prints the summary and "listening on ws://HOST:PORT/", serves, exits 0 on SIGTERM', async () => {
    const indexDir = mkdtempSync(join(tmpdir(), 'dicomstream-cli-index-'));
    const child = spawn(process.execPath, [cli, 'serve', filesDir, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', '--index-dir', indexDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (ws:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`exited ${code} before listening: ${out}`)));
      });
      const skipped = manifest.files.filter((f) => expectation(f).outcome === 'skipped').length;
      assert.match(out, new RegExp(`indexed .*: ${manifest.files.length} files, \\d+ studies, \\d+ series, \\d+ instances, \\d+ frames; ${skipped} skipped`));
      assert.match(out, /skipped MR_truncated\.dcm: pixel data truncated/);
      const c = await connect(url, { WebSocket });
      const [study] = await c.listStudies();
      const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
      const frame = await c.getFrame(series.instances[0]!.sopInstanceUid, 1);
      assert.ok(frame.bytes.length > 0);
      c.close();
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
      rmSync(indexDir, { recursive: true, force: true });
    }
  });

  it('index: builds the saved index with progress and a summary, then refreshes only what changed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dicomstream-cli-tree-'));
    try {
      writeTree(dir, 300, { perSeries: 30, seriesPerStudy: 5, salt: 'cli' });
      writeFileSync(join(dir, 'notes.txt'), 'not DICOM');
      const run = () => {
        const child = spawnSyncCli(['index', dir, '--parse-workers', '2']);
        assert.equal(child.status, 0, child.stderr);
        return child;
      };
      const cold = run();
      // Not a terminal: plain progress lines, the last one at the end.
      assert.match(cold.stderr, /^indexing: 301\/301 files, \d+ files\/s, done in [\d.]+ s$/m);
      assert.match(cold.stdout, /indexed .*: 301 files, 2 studies, 10 series, 300 instances, 300 frames; 1 skipped, 0 duplicates in [\d.]+ s \(300 parsed, 0 from the saved index\)/);
      assert.match(cold.stdout, /skipped by reason: NOT_DICOM 1/);
      assert.match(cold.stdout, /skipped notes\.txt: /);
      // Changed: one file replaced, one deleted, one added.
      writeFileSync(join(dir, 'study-0', 'series-0', '0.dcm'), smallImage(0, 0, 0, { salt: 'cli', size: 32 }));
      unlinkSync(join(dir, 'study-0', 'series-1', '0.dcm'));
      writeFileSync(join(dir, 'study-0', 'series-1', 'extra.dcm'), smallImage(0, 1, 99, { salt: 'cli' }));
      const warm = run();
      assert.match(warm.stdout, /301 files, 2 studies, 10 series, 300 instances, 300 frames;.*\(2 parsed, 298 from the saved index\)/);
      assert.match(warm.stdout, /2 parsed, 298 unchanged, 1 removed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('scan --json: lists indexed, skipped and duplicate files', () => {
    const report = JSON.parse(execFileSync(process.execPath, [cli, 'scan', filesDir, '--json'], { encoding: 'utf8' })) as {
      files: Array<{ path: string; frames: number }>; skipped: Array<{ path: string; code: string; reason: string }>; duplicates: Array<{ path: string }>;
    };
    assert.equal(report.files.length + report.skipped.length, manifest.files.length);
    const gz = manifest.files.find((f) => f.gzip_wrapped);
    if (gz) assert.equal(report.skipped.find((s) => s.path === gz.file)?.code, 'GZIP');
    assert.ok(report.duplicates.length > 0);
  });

  it('serve: refuses to listen beyond loopback without an access policy', () => {
    const run = spawnSyncCli(['serve', filesDir, '--host', '0.0.0.0', '--port', '0', '--index-dir', join(tmpdir(), 'dicomstream-cli-refused')]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /refusing to listen on 0\.0\.0\.0 without an access policy/);
    rmSync(join(tmpdir(), 'dicomstream-cli-refused'), { recursive: true, force: true });
  });

  it('refuses a bad option with a clear message', () => {
    assert.throws(() => execFileSync(process.execPath, [cli, 'serve', filesDir, '--port', 'eighty'], { encoding: 'utf8', stdio: 'pipe' }), /expected a whole number/);
  });
});
