// The command line as an operator runs it: `dicomstream serve DIR` prints a summary and the
// listening line, serves, and stops cleanly on SIGTERM; `dicomstream scan --json` reports.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { connect } from '../web-client/index.js';
import { expectation, filesDir, manifest } from './helpers/corpus.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server', 'cli.js');

describe('command line', () => {
  it('serve: prints the summary and "listening on ws://HOST:PORT/", serves, exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [cli, 'serve', filesDir, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

  it('refuses a bad option with a clear message', () => {
    assert.throws(() => execFileSync(process.execPath, [cli, 'serve', filesDir, '--port', 'eighty'], { encoding: 'utf8', stdio: 'pipe' }), /expected a whole number/);
  });
});
