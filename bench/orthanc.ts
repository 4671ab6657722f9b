// Orthanc for the benchmarks: where Debian installed it, the private network namespace it must run
// in (it cannot bind to 127.0.0.1 only), starting it with a config of its own and uploading a series.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchError, fmt, startServerProcess, type Closer, type ServerProcess } from './common.js';

/** Orthanc takes about 2 s to stop its HTTP server. */
const ORTHANC_KILL_GRACE_MS = 15_000;
/** Set in the environment of the copy of a script that runs inside `unshare -n`. */
export const NETNS_ENV = 'DICOMSTREAM_BENCH_NETNS';

export interface OrthancInstall { binary: string; plugin: string; versions: string }

/** The files of an installed Debian package, or undefined if it is not installed. */
function packageFiles(name: string): string[] | undefined {
  const run = spawnSync('dpkg', ['-L', name], { encoding: 'utf8' });
  return run.error || run.status !== 0 ? undefined : run.stdout.split('\n').filter(Boolean);
}

/** Orthanc's binary and the DICOMweb plugin's .so, from `dpkg -L`; undefined unless both are there. */
export function findOrthanc(): OrthancInstall | undefined {
  const core = packageFiles('orthanc');
  const web = packageFiles('orthanc-dicomweb');
  const binary = core?.find((f) => /\/Orthanc$/.test(f) && existsSync(f));
  const plugins = (web ?? []).filter((f) => /libOrthancDicomWeb\.so/.test(f) && existsSync(f));
  // Debian links the versioned library into Orthanc's plugin folder: prefer that link.
  const plugin = plugins.find((f) => f.includes('/plugins/')) ?? plugins[0];
  if (!binary || !plugin) return undefined;
  const query = spawnSync('dpkg-query', ['-W', '-f', '${Package} ${Version}, ', 'orthanc', 'orthanc-dicomweb'], { encoding: 'utf8' });
  return { binary, plugin, versions: query.status === 0 ? query.stdout.replace(/, $/, '') : 'versions unknown' };
}

/** True if this process's network namespace has no interface but loopback (/proc/self/net/dev is per namespace). */
export function loopbackOnly(): boolean {
  const names = readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2)
    .map((line) => line.split(':')[0]!.trim()).filter(Boolean);
  return names.length === 1 && names[0] === 'lo';
}

/** Brings up loopback in the new namespace, then becomes the command given after it. */
const NETNS_SHELL = 'PATH="$PATH:/usr/sbin:/sbin"; ip link set lo up || exit 125; exec "$@"';

/** Whether `unshare -n` and `ip link set lo up` work here (they need root or CAP_SYS_ADMIN, and iproute2). */
export function namespaceProblem(): string | undefined {
  const probe = spawnSync('unshare', ['-n', '--', 'sh', '-c', NETNS_SHELL, 'sh', 'true'], { encoding: 'utf8' });
  if (probe.error) return `unshare: ${probe.error.message}`;
  return probe.status === 0 ? undefined : (probe.stderr.trim() || `unshare -n exited ${probe.status}`);
}

/**
 * Runs this same script (same Node, same flags, same arguments) under `unshare -n`, waits for it and
 * returns its exit code. Signals sent to this process are passed on; the copy stops its servers.
 */
export async function rerunInNamespace(): Promise<number> {
  const args = ['-n', '--', 'sh', '-c', NETNS_SHELL, 'sh', process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  const child = spawn('unshare', args, { stdio: 'inherit', env: { ...process.env, [NETNS_ENV]: '1' } });
  const forward = (signal: NodeJS.Signals): void => { child.kill(signal); };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    return await new Promise<number>((ok, fail) => {
      child.once('error', fail);
      child.once('exit', (code, signal) => ok(code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1)));
    });
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

/** A port that was free on 127.0.0.1 a moment ago (Orthanc cannot take port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(0, '127.0.0.1', ok); });
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export interface HttpAnswer { status: number; contentType: string; body: Buffer }

/** Requests retried because a kept-alive connection had been closed by the server in the meantime. */
let resent = 0;
/** How many so far. */
export const resentOnStaleSocket = (): number => resent;

function httpOnce(agent: Agent, port: number, method: string, path: string, headers: Record<string, string | number>, body?: Buffer): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((ok, fail) => {
    const req = request({ agent, host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', fail);
      res.on('close', () => { if (!res.complete) fail(new Error(`${method} ${path}: the response was cut short`)); });
      res.on('end', () => ok({
        status: res.statusCode ?? 0,
        contentType: res.headers['content-type'] ?? '',
        body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
      }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => fail(Object.assign(e, { reusedSocket: req.reusedSocket })));
    req.end(body);
  });
}

/**
 * One HTTP request to 127.0.0.1:port. Orthanc closes idle kept-alive connections after 1 s (between
 * one system's rounds), so a request that fails with ECONNRESET on a reused connection is sent again
 * once, as Node's documentation advises; such resends are counted and reported.
 */
export async function http(agent: Agent, port: number, method: string, path: string, headers: Record<string, string | number>, body?: Buffer): Promise<HttpAnswer> {
  try {
    return await httpOnce(agent, port, method, path, headers, body);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { reusedSocket?: boolean };
    if (!err.reusedSocket || err.code !== 'ECONNRESET') throw e;
    resent++;
    return httpOnce(agent, port, method, path, headers, body);
  }
}

/**
 * The one part of a WADO-RS multipart/related answer. Enough of RFC 2046 for Orthanc's answers:
 * `--boundary CRLF headers CRLF CRLF bytes CRLF --boundary--`.
 */
export function singlePart(body: Buffer, contentType: string): Buffer {
  if (!/^multipart\/related/i.test(contentType)) throw new Error(`not multipart/related: ${contentType}`);
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw new Error(`no boundary in ${contentType}`);
  const open = body.indexOf(`--${boundary}\r\n`);
  const headersEnd = open < 0 ? -1 : body.indexOf('\r\n\r\n', open);
  const close = body.lastIndexOf(`\r\n--${boundary}--`);
  if (open < 0 || headersEnd < 0 || close < headersEnd) throw new Error('malformed multipart body');
  const bytes = body.subarray(headersEnd + 4, close);
  if (bytes.includes(`\r\n--${boundary}\r\n`)) throw new Error('more than one part in the answer');
  return bytes;
}

export interface Orthanc { server: ServerProcess; port: number }

/**
 * Starts Orthanc with a config of its own in a temporary folder (storage and index there, no DICOM
 * listener, no authentication, the DICOMweb plugin), waits for "Orthanc has started", and uploads
 * every file of the series through its REST API (POST /instances). Only in a loopback-only namespace.
 */
export async function startOrthanc(install: OrthancInstall, files: ReadonlyArray<{ path: string }>, closer: Closer): Promise<Orthanc> {
  if (!loopbackOnly()) throw new BenchError('refusing to start Orthanc outside a loopback-only network namespace');
  const dir = mkdtempSync(join(tmpdir(), 'dicomstream-bench-orthanc-'));
  closer.add(() => rmSync(dir, { recursive: true, force: true })); // runs after the stop added below
  const port = await freePort();
  const config = {
    Name: 'dicomstream-bench',
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'index'),
    StorageCompression: false,
    DicomServerEnabled: false,
    HttpServerEnabled: true,
    HttpPort: port,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    HttpCompressionEnabled: false,
    SaveJobs: false,
    Plugins: [install.plugin],
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false },
  };
  const configPath = join(dir, 'orthanc.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const server = startServerProcess('orthanc', [configPath], undefined, {
    command: install.binary,
    ready: { pattern: /Orthanc has started/, on: 'stderr', url: `http://127.0.0.1:${port}/` },
    killGraceMs: ORTHANC_KILL_GRACE_MS,
    // Orthanc logs warnings (W...) at every start and stop: pass on only errors (E...) and fatal ones (F...).
    echo: (line) => /^[EF]\d{4}/.test(line),
  });
  closer.add(() => server.stop());
  const url = await server.url;
  console.log(`orthanc: pid ${server.pid}, ${url} (${install.versions}), storage in ${dir}`);

  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const started = performance.now();
    for (const f of files) {
      const body = readFileSync(f.path);
      const answer = await http(agent, port, 'POST', '/instances', { 'Content-Type': 'application/dicom', 'Content-Length': body.length }, body);
      const status = answer.status === 200 ? (JSON.parse(answer.body.toString('utf8')) as { Status?: string }).Status : undefined;
      if (status !== 'Success' && status !== 'AlreadyStored') {
        throw new BenchError(`Orthanc refused ${f.path}: HTTP ${answer.status} ${answer.body.toString('utf8', 0, 300)}`);
      }
    }
    console.log(`orthanc: uploaded ${files.length} files in ${fmt((performance.now() - started) / 1000)} s (POST /instances)`);
  } finally {
    agent.destroy();
  }
  return { server, port };
}

/**
 * Orthanc is installed: runs this script again inside a loopback-only network namespace unless it
 * is in one already. Gives the copy's exit code once it has run, undefined when already inside
 * one, or why Orthanc must be skipped.
 */
export async function inNamespaceForOrthanc(): Promise<{ rerunExit: number } | { skipped: string } | undefined> {
  if (loopbackOnly()) return undefined;
  if (process.env[NETNS_ENV]) throw new BenchError('still not in a loopback-only network namespace after unshare -n');
  const problem = namespaceProblem();
  if (problem !== undefined) return { skipped: `Orthanc skipped: it listens on every interface, and no private network namespace could be made (${problem})` };
  console.log('Orthanc is installed: running the benchmark inside a private network namespace (unshare -n, loopback only)');
  return { rerunExit: await rerunInNamespace() };
}
