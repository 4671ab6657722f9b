#!/usr/bin/env node
// The dicomstream command line: `serve` a folder of DICOM files, or `scan` it and report.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { CodedError } from '../shared/coded-error.js';
import { S3Archive, isS3Url } from './archive/s3.js';
import { objectIndexing } from './archive/object-indexing.js';
import { scanFolder } from './index/scan.js';
import { Catalogue } from './index/catalogue.js';
import { IndexLock } from './index/index-lock.js';
import { openIndexFolder } from './index/index-folder.js';
import { IndexStore } from './index/index-store.js';
import { ParsePool } from './index/parse-pool.js';
import { refreshIndex, summaryOf } from './index/refresh.js';
import { createLogger, type LogLevel } from './log.js';
import { printable } from './printable.js';
import { summaryLines } from './summary-lines.js';
import { progressLogger, progressReporter } from './progress.js';
import { OPTIONS, apiName, defaultText, type OptionRow, type TableOptions } from './options.js';
import { SERVER_NAME, startServer, type RunningServer } from './server.js';
import { SAMPLE_VERSION, ensureSample } from './sample/make-sample.js';

/** Where the built-in sample is written on first run: DICOMSTREAM_SAMPLE_DIR, else the user's cache. */
function sampleDir(): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return resolve(process.env.DICOMSTREAM_SAMPLE_DIR || join(cache, 'dicomstream', `sample-v${SAMPLE_VERSION}`));
}

const integer = (min: number, max = Number.MAX_SAFE_INTEGER) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max || value.trim() === '') {
    throw new InvalidArgumentError(max < Number.MAX_SAFE_INTEGER ? `expected a whole number from ${min} to ${max}` : `expected a whole number ≥ ${min}`);
  }
  return n;
};
const seconds = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || value.trim() === '') throw new InvalidArgumentError(`expected a number of seconds ≥ ${min}`);
  return n;
};
const bytes = (min: number) => (value: string): number => {
  const m = /^(\d+)\s*(k|kib|m|mib|g|gib)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a size such as 262144, 256k or 4m');
  const unit = (m[2] ?? '').toLowerCase();
  const n = Number(m[1]) * (unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('g') ? 1024 ** 3 : 1);
  if (n < min) throw new InvalidArgumentError(`expected at least ${min} bytes`);
  return n;
};

/** The table's options of one command, as commander options. */
function addOptions(cmd: Command, command: OptionRow['commands'][number]): Command {
  for (const row of OPTIONS as readonly OptionRow[]) {
    if (!row.commands.includes(command)) continue;
    const flags = `${row.short ? `${row.short}, ` : ''}${row.flag}${row.argument ? ` <${row.argument}>` : ''}`;
    const option = new Option(flags, row.meaning);
    const min = row.min ?? 0;
    if (row.kind === 'integer') option.argParser(integer(min, row.max));
    else if (row.kind === 'bytes') option.argParser(bytes(min));
    else if (row.kind === 'seconds') option.argParser(seconds(min));
    else if (row.kind === 'choice' && row.choices) option.choices(row.choices);
    if (row.default !== undefined && row.kind !== 'boolean') option.default(row.default, defaultText(row));
    else if (row.defaultText) option.description += ` (default: ${row.defaultText})`;
    cmd.addOption(option);
  }
  return cmd;
}

/** The options that go to startServer as they are (the API name is the flag camel-cased). */
function tableOptions(opts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const row of OPTIONS as readonly OptionRow[]) {
    if (row.cliOnly || !row.commands.includes('serve')) continue;
    const name = apiName(row.flag);
    if (opts[name] !== undefined) out[name] = opts[name];
  }
  return out;
}

/** Lines to stdout. */
const print = (lines: readonly string[]) => { for (const line of lines) process.stdout.write(line + '\n'); };

const program = new Command();
program.name('dicomstream').description('Stream DICOM pixel data to browsers over WebSocket.').version(SERVER_NAME.split('/')[1]!)
  // Set before the commands are added, so they inherit it: errors reach the handler at the end.
  .exitOverride();

addOptions(program.command('serve'), 'serve')
  .description('index a folder of DICOM files and serve its frames over WebSocket')
  .argument('[dir]', 'folder of DICOM files, scanned recursively (default: the built-in sample)')
  .action(async (dir: string | undefined, opts: Record<string, unknown> & {
    logLevel: LogLevel; tokenFile?: string; jwtSecretFile?: string; jwtPublicKey?: string; jwksUrl?: string; jwtIssuer?: string;
    jwtAudience?: string; allowOrigin?: string[]; tlsCert?: string; tlsKey?: string;
  }) => {
    const log = createLogger(opts.logLevel);
    if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new CodedError('BAD_OPTION', '--tls-cert and --tls-key go together');
    // Secrets come from files or the environment, never from the command line (ps shows it); read
    // again on SIGHUP (a rotated token, a renewed certificate).
    const secret = (file: string | undefined, env: string) => (file ? readFileSync(file, 'utf8').trim() : process.env[env] || undefined);
    const readAccess = () => {
      const jwtSecret = secret(opts.jwtSecretFile, 'DICOMSTREAM_JWT_SECRET');
      const jwtPublicKey = opts.jwtPublicKey ? readFileSync(opts.jwtPublicKey, 'utf8') : undefined;
      const jwt = jwtSecret || jwtPublicKey || opts.jwksUrl
        ? { secret: jwtSecret, publicKey: jwtPublicKey, jwksUrl: opts.jwksUrl, issuer: opts.jwtIssuer, audience: opts.jwtAudience }
        : undefined;
      return { token: secret(opts.tokenFile, 'DICOMSTREAM_TOKEN'), jwt, origins: opts.allowOrigin };
    };
    const readTls = () => (opts.tlsCert && opts.tlsKey ? { cert: readFileSync(opts.tlsCert), key: readFileSync(opts.tlsKey) } : undefined);
    // Signals are handled from the start: the first indexing takes minutes on a large archive, and
    // the server answers health checks (and is sent reloads and stops) meanwhile.
    let server: RunningServer | undefined;
    const stop = (signal: string) => {
      log.info('shutting down', { signal });
      if (!server) {
        // Still indexing: what it saved stays (the next start goes on from there); the lock is let go.
        void IndexLock.releaseAll().finally(() => process.exit(0));
        return;
      }
      void server.close().then(() => process.exit(0), (e: unknown) => {
        log.error('shutdown failed', { error: (e as Error).message });
        process.exit(1);
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    // SIGHUP reloads, as daemons do: the token, keys and certificate files read again, the folder rescanned.
    process.on('SIGHUP', () => {
      if (!server) {
        log.info('reload asked while starting: nothing to reload yet (the folder is being indexed now)', { signal: 'SIGHUP' });
        return;
      }
      const running = server;
      log.info('reloading', { signal: 'SIGHUP' });
      Promise.resolve().then(() => running.reload({ access: readAccess(), tls: readTls() })).then(
        (summary) => log.info('reloaded', { files: summary.files, parsed: summary.parsed, removed: summary.removed }),
        (e: unknown) => log.error('reload failed: going on as before', { error: (e as Error).message }),
      );
    });
    let root = dir ? (isS3Url(dir) ? dir : resolve(dir)) : sampleDir();
    if (!dir) {
      const t0 = Date.now();
      const sample = await ensureSample(root);
      root = sample.dir;
      log.info(sample.created ? 'no folder given: wrote the built-in sample' : 'no folder given: serving the built-in sample',
        { root, files: sample.files, ...(sample.created ? { ms: Date.now() - t0 } : {}) });
    }
    server = await startServer({
      ...(tableOptions(opts) as TableOptions), root, log,
      // A bar on a terminal; otherwise JSON lines like the rest of stderr.
      onIndexProgress: process.stderr.isTTY ? progressReporter(process.stderr, 'indexing') : progressLogger(log, 'indexing'),
      access: readAccess(),
      tls: readTls(),
    });
    print(summaryLines(root, server.index, server.catalogue));
    process.stdout.write(`listening on ${server.url}\n`);
  });

addOptions(program.command('index'), 'index')
  .description('build or refresh the saved parser index of a folder (resumable: an interrupted run keeps what it finished)')
  .argument('<dir>', 'folder of DICOM files, or s3://bucket/prefix')
  .action(async (dir: string, opts: { indexDir?: string; parseWorkers: number; s3Endpoint?: string; s3Timeout: number; followSymlinks?: boolean }) => {
    const s3 = { endpoint: opts.s3Endpoint, idleTimeoutMs: opts.s3Timeout * 1000 };
    const archive = isS3Url(dir) ? new S3Archive(dir, s3) : undefined;
    const objects = archive ? objectIndexing(archive) : undefined;
    const root = archive ? archive.root : resolve(dir);
    if (!archive && !existsSync(root)) throw new CodedError('NO_SUCH_FOLDER', `no such folder: ${root}`);
    const pool = new ParsePool(opts.parseWorkers);
    const parser = objects?.parser ?? pool;
    const folder = openIndexFolder(root, opts.indexDir, archive, s3)!;
    const store = new IndexStore(root, folder, (path) => parser.parse(path, true), (file, reason) => {
      process.stderr.write(`index file ${printable(file)} not trusted (${printable(reason)}): rebuilt\n`);
    });
    // Ctrl-C: what the finished batches saved stays; the next run goes on from there. Set before
    // the lock is taken (a Ctrl-C right after must still let go of it); the lock is let go first
    // (one in a bucket cannot be removed on the way out).
    process.once('SIGINT', () => {
      process.stderr.write('\ninterrupted: the files indexed so far are saved; run again to go on\n');
      void IndexLock.releaseAll().finally(() => process.exit(130));
    });
    // Before parsing anything: an index that cannot be saved is not worth building.
    const lock = await folder.probe()
      .catch((e: unknown) => { throw new CodedError('INDEX_NOT_WRITABLE', `cannot write the index in ${folder.location}: ${(e as Error).message}; give --index-dir a writable folder`); })
      .then(() => IndexLock.acquire(folder, 'index'))
      .catch(async (e: unknown) => { await pool.close(); folder.close(); throw e; });
    // Temp files of a writer killed mid-write are garbage now that this one holds the lock.
    const staleTemps = store.removeStaleTemps().then((n) => {
      if (n) process.stderr.write(`removed ${n} temporary index files left by an interrupted writer in ${printable(store.dir)}\n`);
    }, (e: unknown) => process.stderr.write(`stale temporary index files not removed: ${printable((e as Error).message)}\n`));
    try {
      const result = await refreshIndex(root, await store.readCatalogue(), parser, store, {
        onProgress: progressReporter(process.stderr, 'indexing'), batchFiles: 1000, followSymlinksOutside: opts.followSymlinks,
        ...(objects ? { list: () => objects.list() } : {}),
      });
      const catalogue = new Catalogue(result.index, store);
      print(summaryLines(root, summaryOf(root, result, store.dir), catalogue));
      process.stdout.write(`index saved in ${printable(store.dir)}: ${result.parsed} parsed, ${result.reused} unchanged, ${result.removed} removed; ` +
        `${Math.round(result.parsed / Math.max(result.ms / 1000, 1e-3))} files/s parsed\n`);
    } finally {
      await staleTemps;
      await pool.close();
      archive?.close();
      await lock.release();
      folder.close();
    }
  });

addOptions(program.command('scan'), 'scan')
  .description('index a folder and report what would be served, skipped and why, without serving it or saving anything')
  .argument('<dir>', 'folder of DICOM files')
  .option('--json', 'print the report as JSON')
  .action(async (dir: string, opts: { json?: boolean; indexDir?: string; followSymlinks?: boolean; parseWorkers: number }) => {
    const root = resolve(dir);
    const scan = await scanFolder(root, {
      indexDir: opts.indexDir, followSymlinks: opts.followSymlinks, parseWorkers: opts.parseWorkers,
      onIndexProblem: (file, reason) => process.stderr.write(`index file ${printable(file)} not trusted (${printable(reason)}): its files parsed\n`),
    });
    const catalogue = Catalogue.fromFiles(scan.files);
    if (opts.json) {
      process.stdout.write(JSON.stringify({
        files: scan.files.map((f) => ({ path: relative(root, f.path), sopInstanceUid: f.image.sopInstanceUid, frames: f.frames.length, warnings: f.warnings })),
        skipped: scan.skipped,
        duplicates: catalogue.duplicates.map((d) => ({ ...d, path: relative(root, d.path), servedPath: relative(root, d.servedPath) })),
      }, null, 2) + '\n');
    } else {
      print(summaryLines(root, scan.summary, catalogue, scan.files));
    }
  });

program.parseAsync().catch((e: unknown) => {
  // Usage errors (commander has printed them) exit 2; --help and --version exit 0.
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  const code = e instanceof CodedError ? `${e.code}: ` : '';
  process.stderr.write(`dicomstream: ${code}${printable((e as Error).message)}\n`);
  process.exit(1);
});
