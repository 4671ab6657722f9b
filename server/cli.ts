#!/usr/bin/env node
// The dicomstream command line: `serve` a folder of DICOM files, or `scan` it and report.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { scanFolder } from './index/scan.js';
import { Catalogue } from './index/catalogue.js';
import { DEFAULT_INDEX_DIR, IndexStore } from './index/index-store.js';
import { DEFAULT_PARSE_WORKERS, ParsePool } from './index/parse-pool.js';
import { refreshIndex, summaryOf, type SkippedFile } from './index/refresh.js';
import { createLogger, type LogLevel } from './log.js';
import { progressReporter } from './progress.js';
import { DEFAULT_CONNECTION_LIMITS, DEFAULT_LIMITS, SERVER_NAME, startServer } from './server.js';
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

interface Counted { files: number; parsed?: number; reused?: number; ms?: number; skipped: SkippedFile[] }

function printSummary(root: string, index: Counted, catalogue: Catalogue, write: (line: string) => void): void {
  const timing = index.ms === undefined ? '' :
    ` in ${(index.ms / 1000).toFixed(1)} s (${index.parsed ?? 0} parsed, ${index.reused ?? 0} from the saved index)`;
  write(`indexed ${root}: ${index.files} files, ${catalogue.studyCount} studies, ` +
    `${catalogue.seriesCount} series, ${catalogue.instanceCount} instances, ${catalogue.frameCount} frames; ` +
    `${index.skipped.length} skipped, ${catalogue.duplicates.length} duplicates${timing}`);
  const byCode = new Map<string, number>();
  for (const s of index.skipped) byCode.set(s.code, (byCode.get(s.code) ?? 0) + 1);
  if (byCode.size) write(`  skipped by reason: ${[...byCode].map(([code, n]) => `${code} ${n}`).join(', ')}`);
  for (const s of index.skipped) write(`  skipped ${s.path}: ${s.reason} [${s.code}]`);
  for (const d of catalogue.duplicates) {
    write(`  duplicate ${relative(root, d.path)}: same SOP Instance UID as ${relative(root, d.servedPath)}, which is served`);
  }
}

const indexOptions = (cmd: Command): Command => cmd
  .option('--index-dir <dir>', `where the parser index is saved (default: ${DEFAULT_INDEX_DIR}/ inside the folder)`)
  .option('--parse-workers <n>', 'worker threads parsing files (0: the main thread)', integer(0), DEFAULT_PARSE_WORKERS);

const program = new Command();
program.name('dicomstream').description('Stream DICOM pixel data to browsers over WebSocket.').version(SERVER_NAME.split('/')[1]!);

indexOptions(program.command('serve'))
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
  .option('--index-cache <bytes>', 'opened series\' index entries kept in memory', bytes, 64 * 1024 * 1024)
  .option('--no-watch', 'do not pick up files added, replaced or deleted while serving')
  .option('--rescan-interval <seconds>', 'also rescan the folder this often (0: never)', integer(0), 60)
  .option('--token-file <file>', 'access: a static bearer token, read from this file (or $DICOMSTREAM_TOKEN)')
  .option('--jwt-secret-file <file>', 'access: HS256 secret for signed tokens, read from this file (or $DICOMSTREAM_JWT_SECRET)')
  .option('--jwt-public-key <file>', 'access: RS256 public key (PEM) for signed tokens')
  .option('--jwks-url <url>', 'access: fetch RS256 keys from this JWKS URL')
  .option('--jwt-issuer <iss>', 'access: signed tokens must have this issuer')
  .option('--jwt-audience <aud>', 'access: signed tokens must have this audience')
  .option('--allow-origin <origin...>', 'browser pages allowed to connect (Origin header), e.g. https://viewer.example.org')
  .option('--tls-cert <file>', 'serve https:// and wss:// with this certificate (PEM)')
  .option('--tls-key <file>', 'the certificate\'s private key (PEM)')
  .option('--max-connections <n>', 'open connections at most', integer(1), DEFAULT_CONNECTION_LIMITS.maxConnections)
  .option('--max-connections-per-address <n>', 'open connections at most from one address', integer(1), DEFAULT_CONNECTION_LIMITS.maxConnectionsPerAddress)
  .option('--max-message-size <bytes>', 'largest client message (larger: connection closed, 1009)', bytes, DEFAULT_LIMITS.maxMessageBytes)
  .option('--max-open-requests <n>', 'frame requests open at once per connection', integer(1), DEFAULT_LIMITS.maxOpenRequests)
  .option('--max-frames-per-request <n>', 'frames in one request at most', integer(1), DEFAULT_LIMITS.maxFramesPerRequest)
  .option('--max-queued-frames <n>', 'frames queued at most per connection, over its open requests', integer(1), DEFAULT_LIMITS.maxQueuedFrames)
  .option('--max-queued-frames-total <n>', 'frames queued at most over all connections', integer(1), DEFAULT_LIMITS.maxQueuedFramesInAll)
  .option('--rate-limit <n>', 'client messages a second per connection (bursts of twice that; 0: none)', integer(0), DEFAULT_LIMITS.maxMessagesPerSecond)
  .option('--heartbeat <seconds>', 'ping every connection this often; cut those that did not answer (0: never)', integer(0), DEFAULT_CONNECTION_LIMITS.heartbeatMs / 1000)
  .option('--shutdown-timeout <seconds>', 'on SIGTERM/SIGINT, let frames in flight finish this long', integer(0), 10)
  .option('--follow-symlinks', 'also serve files through symbolic links that lead outside the folder')
  .option('--log-level <level>', 'debug, info, warn, error or silent', 'info')
  .action(async (dir: string | undefined, opts: {
    port: number; host: string; chunkSize: number; maxBuffered: number; maxOpenFiles: number; frameCache: number; readahead: number;
    readConcurrency: number; logLevel: LogLevel; indexDir?: string; parseWorkers: number; indexCache: number; watch: boolean; rescanInterval: number;
    tokenFile?: string; jwtSecretFile?: string; jwtPublicKey?: string; jwksUrl?: string; jwtIssuer?: string; jwtAudience?: string; allowOrigin?: string[];
    tlsCert?: string; tlsKey?: string; maxConnections: number; maxConnectionsPerAddress: number; maxMessageSize: number; maxOpenRequests: number;
    maxFramesPerRequest: number; maxQueuedFrames: number; maxQueuedFramesTotal: number; rateLimit: number; heartbeat: number; shutdownTimeout: number; followSymlinks?: boolean;
  }) => {
    const log = createLogger(opts.logLevel);
    if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new Error('--tls-cert and --tls-key go together');
    // Secrets come from files or the environment, never from the command line (ps shows it).
    const secret = (file: string | undefined, env: string) => (file ? readFileSync(file, 'utf8').trim() : process.env[env] || undefined);
    const token = secret(opts.tokenFile, 'DICOMSTREAM_TOKEN');
    const jwtSecret = secret(opts.jwtSecretFile, 'DICOMSTREAM_JWT_SECRET');
    const jwtPublicKey = opts.jwtPublicKey ? readFileSync(opts.jwtPublicKey, 'utf8') : undefined;
    const jwt = jwtSecret || jwtPublicKey || opts.jwksUrl
      ? { secret: jwtSecret, publicKey: jwtPublicKey, jwksUrl: opts.jwksUrl, issuer: opts.jwtIssuer, audience: opts.jwtAudience }
      : undefined;
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
      indexDir: opts.indexDir, parseWorkers: opts.parseWorkers, indexCacheBytes: opts.indexCache, watch: opts.watch,
      rescanMs: opts.rescanInterval * 1000,
      onIndexProgress: progressReporter(process.stderr, 'indexing'),
      access: { token, jwt, origins: opts.allowOrigin },
      tls: opts.tlsCert && opts.tlsKey ? { cert: readFileSync(opts.tlsCert), key: readFileSync(opts.tlsKey) } : undefined,
      maxConnections: opts.maxConnections, maxConnectionsPerAddress: opts.maxConnectionsPerAddress, maxMessageBytes: opts.maxMessageSize,
      maxOpenRequests: opts.maxOpenRequests, maxFramesPerRequest: opts.maxFramesPerRequest, maxQueuedFrames: opts.maxQueuedFrames, maxQueuedFramesInAll: opts.maxQueuedFramesTotal, maxMessagesPerSecond: opts.rateLimit,
      heartbeatMs: opts.heartbeat * 1000, followSymlinksOutside: opts.followSymlinks ?? false,
    });
    printSummary(root, server.index, server.catalogue, (line) => process.stdout.write(line + '\n'));
    process.stdout.write(`listening on ${server.url}\n`);
    const stop = (signal: string) => {
      log.info('shutting down', { signal });
      void server.close({ deadlineMs: opts.shutdownTimeout * 1000 }).then(() => process.exit(0), (e: unknown) => {
        log.error('shutdown failed', { error: (e as Error).message });
        process.exit(1);
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });

indexOptions(program.command('index'))
  .description('build or refresh the saved parser index of a folder (resumable: an interrupted run keeps what it finished)')
  .argument('<dir>', 'folder of DICOM files')
  .action(async (dir: string, opts: { indexDir?: string; parseWorkers: number }) => {
    const root = resolve(dir);
    const parser = new ParsePool(opts.parseWorkers);
    const store = new IndexStore(root, resolve(root, opts.indexDir ?? DEFAULT_INDEX_DIR), (path) => parser.parse(path, true), (file, reason) => {
      process.stderr.write(`index file ${file} not trusted (${reason}): rebuilt\n`);
    });
    // Ctrl-C: what the finished batches saved stays; the next run goes on from there.
    process.once('SIGINT', () => {
      process.stderr.write('\ninterrupted: the files indexed so far are saved; run again to go on\n');
      process.exit(130);
    });
    try {
      const result = await refreshIndex(root, await store.readCatalogue(), parser, store, {
        onProgress: progressReporter(process.stderr, 'indexing'), batchFiles: 1000,
      });
      const catalogue = new Catalogue(result.index, store);
      printSummary(root, summaryOf(root, result, store.dir), catalogue, (line) => process.stdout.write(line + '\n'));
      process.stdout.write(`index saved in ${store.dir}: ${result.parsed} parsed, ${result.reused} unchanged, ${result.removed} removed; ` +
        `${Math.round(result.parsed / Math.max(result.ms / 1000, 1e-3))} files/s parsed\n`);
    } finally {
      await parser.close();
    }
  });

program.command('scan')
  .description('index a folder and report what would be served, without serving it')
  .argument('<dir>', 'folder of DICOM files')
  .option('--json', 'print the report as JSON')
  .action(async (dir: string, opts: { json?: boolean }) => {
    const root = resolve(dir);
    const scan = await scanFolder(root);
    const catalogue = Catalogue.fromFiles(scan.files);
    if (opts.json) {
      process.stdout.write(JSON.stringify({
        files: scan.files.map((f) => ({ path: relative(root, f.path), sopInstanceUid: f.image.sopInstanceUid, frames: f.frames.length, warnings: f.warnings })),
        skipped: scan.skipped,
        duplicates: catalogue.duplicates.map((d) => ({ ...d, path: relative(root, d.path), servedPath: relative(root, d.servedPath) })),
      }, null, 2) + '\n');
    } else {
      printSummary(root, { files: scan.files.length + scan.skipped.length, skipped: scan.skipped }, catalogue, (line) => process.stdout.write(line + '\n'));
      for (const f of scan.files) for (const w of f.warnings) process.stdout.write(`  note ${relative(root, f.path)}: ${w}\n`);
    }
  });

program.parseAsync().catch((e: unknown) => {
  process.stderr.write(`dicomstream: ${(e as Error).message}\n`);
  process.exit(1);
});
