#!/usr/bin/env node
// The dicomstream command line: `serve` a folder of DICOM files, or `scan` it and report.
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { scanFolder, type ScanResult } from './index/scan.js';
import { Catalogue } from './index/catalogue.js';
import { createLogger, type LogLevel } from './log.js';
import { DEFAULT_LIMITS, SERVER_NAME, startServer } from './server.js';
import { SAMPLE_VERSION, ensureSample } from './sample/make-sample.js';

/** Where the built-in sample is written on first run: DICOMSTREAM_SAMPLE_DIR, else the user's cache. */
function sampleDir(): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return resolve(process.env.DICOMSTREAM_SAMPLE_DIR || join(cache, 'dicomstream', `sample-v${SAMPLE_VERSION}`));
}

const integer = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number ≥ ${min}`);
  return n;
};
const bytes = (value: string): number => {
  const m = /^(\d+)\s*(k|kib|m|mib)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a size such as 262144, 256k or 4m');
  const unit = (m[2] ?? '').toLowerCase();
  return Number(m[1]) * (unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 * 1024 : 1);
};

function printSummary(root: string, scan: ScanResult, catalogue: Catalogue, write: (line: string) => void): void {
  write(`indexed ${root}: ${scan.files.length + scan.skipped.length} files, ${catalogue.studyCount} studies, ` +
    `${catalogue.seriesCount} series, ${catalogue.instanceCount} instances, ${catalogue.frameCount} frames; ` +
    `${scan.skipped.length} skipped, ${catalogue.duplicates.length} duplicates`);
  for (const s of scan.skipped) write(`  skipped ${s.path}: ${s.reason} [${s.code}]`);
  for (const d of catalogue.duplicates) {
    write(`  duplicate ${relative(root, d.path)}: same SOP Instance UID as ${relative(root, d.servedPath)}, which is served`);
  }
  for (const f of scan.files) for (const w of f.warnings) write(`  note ${relative(root, f.path)}: ${w}`);
}

const program = new Command();
program.name('dicomstream').description('Stream DICOM pixel data to browsers over WebSocket.').version(SERVER_NAME.split('/')[1]!);

program.command('serve')
  .description('index a folder of DICOM files and serve its frames over WebSocket')
  .argument('[dir]', 'folder of DICOM files, scanned recursively (default: the built-in sample)')
  .option('-p, --port <n>', 'port to listen on (0: any free port)', integer(0), 8080)
  .option('-H, --host <addr>', 'address to listen on', '127.0.0.1')
  .option('--chunk-size <bytes>', 'largest frame chunk in one message', bytes, DEFAULT_LIMITS.chunkBytes)
  .option('--max-buffered <bytes>', 'unsent bytes held per connection at most', bytes, DEFAULT_LIMITS.maxBufferedBytes)
  .option('--max-open-files <n>', 'file handles kept open', integer(1), 512)
  .option('--frame-cache <bytes>', 'frames kept in memory, shared by all clients and read ahead into', bytes, 64 * 1024 * 1024)
  .option('--readahead <n>', 'frames read ahead for each frame group', integer(0), 4)
  .option('--read-concurrency <n>', 'disk reads at once', integer(1), 4)
  .option('--log-level <level>', 'debug, info, warn, error or silent', 'info')
  .action(async (dir: string | undefined, opts: {
    port: number; host: string; chunkSize: number; maxBuffered: number; maxOpenFiles: number; frameCache: number; readahead: number;
    readConcurrency: number; logLevel: LogLevel;
  }) => {
    const log = createLogger(opts.logLevel);
    let root = dir ? resolve(dir) : sampleDir();
    if (!dir) {
      const t0 = Date.now();
      const sample = await ensureSample(root);
      root = sample.dir;
      log.info(sample.created ? 'no folder given: wrote the built-in sample' : 'no folder given: serving the built-in sample',
        { root, files: sample.files, ...(sample.created ? { ms: Date.now() - t0 } : {}) });
    }
    const server = await startServer({
      root, host: opts.host, port: opts.port, chunkBytes: opts.chunkSize, maxBufferedBytes: opts.maxBuffered,
      maxOpenFiles: opts.maxOpenFiles, frameCacheBytes: opts.frameCache, readahead: opts.readahead, readConcurrency: opts.readConcurrency, log,
    });
    printSummary(root, server.scan, server.catalogue, (line) => process.stdout.write(line + '\n'));
    process.stdout.write(`listening on ${server.url}\n`);
    const stop = (signal: string) => {
      log.info('shutting down', { signal });
      void server.close().then(() => process.exit(0));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });

program.command('scan')
  .description('index a folder and report what would be served, without serving it')
  .argument('<dir>', 'folder of DICOM files')
  .option('--json', 'print the report as JSON')
  .action(async (dir: string, opts: { json?: boolean }) => {
    const root = resolve(dir);
    const scan = await scanFolder(root);
    const catalogue = new Catalogue(scan.files);
    if (opts.json) {
      process.stdout.write(JSON.stringify({
        files: scan.files.map((f) => ({ path: relative(root, f.path), sopInstanceUid: f.image.sopInstanceUid, frames: f.frames.length, warnings: f.warnings })),
        skipped: scan.skipped,
        duplicates: catalogue.duplicates.map((d) => ({ ...d, path: relative(root, d.path), servedPath: relative(root, d.servedPath) })),
      }, null, 2) + '\n');
    } else {
      printSummary(root, scan, catalogue, (line) => process.stdout.write(line + '\n'));
    }
  });

program.parseAsync().catch((e: unknown) => {
  process.stderr.write(`dicomstream: ${(e as Error).message}\n`);
  process.exit(1);
});
