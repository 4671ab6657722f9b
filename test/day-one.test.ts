// What an operator hit on day one (issue 15), each reproduced: files arriving in a steady stream
// (a DICOM receiver storing a study) are served while the stream goes on, never half-written; the
// server listens before its first indexing (health checks answer, a port in use is found first);
// a file given as the folder, and out-of-range options, are clear errors.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createLogger, startServer } from '../server/index.js';
import type { RefreshProgress } from '../server/index/refresh.js';
import { smallImage, writeTree } from '../server/sample/tree.js';
import { LocalIndexFolder } from '../server/index/index-folder.js';
import { indexFile } from '../server/index/index-file.js';
import { IndexStore } from '../server/index/index-store.js';
import { inMountNamespace, servingUrl } from './helpers/mount-namespace.js';
import { freePort } from './helpers/ports.js';
import { connect } from '../web-client/index.js';
import { sha256 } from './helpers/corpus.js';
import { waitFor } from './helpers/wait-for.js';

const temps: string[] = [];
const tempDir = (name: string) => {
  const dir = mkdtempSync(join(tmpdir(), `dicomstream-${name}-`));
  temps.push(dir);
  return dir;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server', 'cli.js');

/** The HTTP status a WebSocket upgrade gets (101 when let in), and its Retry-After. */
function upgradeAnswer(url: string): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => { resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }); res.resume(); ws.terminate(); });
    ws.on('open', () => { resolve({ status: 101 }); ws.close(); });
    ws.on('error', () => undefined);
  });
}

describe('day one operations', () => {
  after(() => { for (const d of temps) rmSync(d, { recursive: true, force: true }); });

  it('picks up files arriving in a steady stream while it goes on (not when it ends), never a half-written one', async () => {
    const root = tempDir('ingest');
    mkdirSync(join(root, 'incoming'));
    const server = await startServer({ root, host: '127.0.0.1', port: 0, log: createLogger('silent'), watch: true, rescanInterval: 0, indexDir: false });
    const c = await connect(server.url, { WebSocket });
    let writing = true;
    const images = Array.from({ length: 60 }, (_, i) => smallImage(0, 0, i, { salt: 'ingest' }));
    // A file every 50 ms for 3 s, each written in two halves 20 ms apart (as a receiver writes it).
    const stream = (async () => {
      for (const [i, bytes] of images.entries()) {
        const fd = openSync(join(root, 'incoming', `${i}.dcm`), 'w');
        writeSync(fd, bytes, 0, bytes.length >> 1);
        await sleep(20);
        writeSync(fd, bytes, bytes.length >> 1);
        closeSync(fd);
        await sleep(30);
      }
      writing = false;
    })();
    try {
      // Events come without a pause longer than the 200 ms debounce: before, nothing was seen until the end.
      await waitFor(() => server.catalogue.instanceCount >= 5, 'files served while the stream goes on', 2500);
      assert.ok(writing, 'seen before the stream ended');
      await stream;
      await waitFor(() => server.catalogue.instanceCount === images.length, 'every file once the stream ended', 5000);
      const [study] = await c.listStudies();
      const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
      assert.equal(series.instances.length, images.length);
      for (const i of series.instances) {
        const bytes = images[(i.instanceNumber ?? 0) - 1]!;
        assert.equal(sha256((await c.getFrame(i.sopInstanceUid, 1)).bytes), sha256(bytes.subarray(bytes.length - 64 * 64 * 2)), `instance ${i.instanceNumber} whole`);
      }
    } finally {
      await stream;
      c.close();
      await server.close();
    }
  });

  it('listens before its first indexing: /healthz answers, /readyz and upgrades get 503 with the progress, then it serves', async () => {
    const root = tempDir('listen-first');
    writeTree(root, 1500, { salt: 'listen-first' });
    const port = await freePort();
    let progressed = 0;
    const starting = startServer({
      root, host: '127.0.0.1', port, log: createLogger('silent'), watch: false, indexDir: false, parseWorkers: 1,
      onIndexProgress: () => { progressed++; },
    });
    let result: 'pending' | 'started' | 'failed' = 'pending';
    starting.then(() => { result = 'started'; }, () => { result = 'failed'; });
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200, '/healthz while indexing');
      const readyz = await fetch(`${base}/readyz`);
      assert.equal(readyz.status, 503);
      assert.match(await readyz.text(), /indexing/);
      const upgrade = await upgradeAnswer(`ws://127.0.0.1:${port}/`);
      assert.equal(upgrade.status, 503, 'a client is told to come back');
      assert.equal(upgrade.retryAfter, '5');
      assert.equal(result, 'pending', 'all this while the first indexing ran');
      const server = await starting;
      try {
        assert.ok(progressed > 0);
        assert.equal((await fetch(`${base}/readyz`)).status, 200);
        assert.equal((await upgradeAnswer(server.url)).status, 101);
        assert.equal(server.catalogue.instanceCount, 1500);
      } finally {
        await server.close();
      }
    } finally {
      if (result === 'pending') await starting.then((s) => s.close(), () => undefined);
    }
  });

  it('during its first indexing, a SIGHUP does not kill it and a SIGTERM stops it cleanly, letting go of the index lock', async () => {
    const root = tempDir('signals-starting');
    writeTree(root, 3000, { salt: 'signals-starting' });
    const port = await freePort();
    const child = spawn(process.execPath, [cli, 'serve', root, '--port', String(port), '--no-watch', '--parse-workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, 'listening', 20_000);
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503, 'still indexing');
      child.kill('SIGHUP');
      await waitFor(() => /reload asked while starting/.test(err), 'the SIGHUP noted');
      assert.equal(child.exitCode, null, 'not killed by SIGHUP');
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.ok(!readdirSync(join(root, '.dicomstream')).includes('lock'), 'the index lock let go');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('finds a port in use before indexing anything', async () => {
    const root = tempDir('port-in-use');
    writeTree(root, 200, { salt: 'port-in-use' });
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    const progress: RefreshProgress[] = [];
    try {
      await assert.rejects(
        startServer({ root, host: '127.0.0.1', port, log: createLogger('silent'), watch: false, indexDir: false, onIndexProgress: (p) => progress.push(p) }),
        (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE');
      assert.equal(progress.length, 0, 'no file was indexed');
    } finally {
      taken.close();
    }
  });

  it('refuses a file given as the folder, and out-of-range options, with clear errors', () => {
    const root = tempDir('not-a-folder');
    writeTree(root, 1, { salt: 'not-a-folder' });
    const [first] = readdirSync(root, { recursive: true }).map(String).filter((f) => f.endsWith('.dcm'));
    const env = { ...process.env, DICOMSTREAM_SAMPLE_DIR: join(root, 'sample') };
    const notFolder = spawnSync(process.execPath, [cli, 'serve', join(root, first!), '--port', '0'], { encoding: 'utf8', env });
    assert.equal(notFolder.status, 1);
    assert.match(notFolder.stderr, /NOT_A_FOLDER: .* is not a folder/);
    assert.doesNotMatch(notFolder.stdout, /listening/);
    const port = spawnSync(process.execPath, [cli, 'serve', '--port', '70000'], { encoding: 'utf8', env });
    assert.equal(port.status, 2, 'a usage error');
    assert.match(port.stderr, /--port.*70000.*from 0 to 65535/);
    const level = spawnSync(process.execPath, [cli, 'serve', '--log-level', 'verbose'], { encoding: 'utf8', env });
    assert.equal(level.status, 2);
    assert.match(level.stderr, /verbose.*Allowed choices are debug, info, warn, error, silent/);
    assert.deepEqual(readdirSync(root).filter((f) => f === 'sample'), [], 'nothing written before the options were checked');
  });

  it('checks the API\'s numbers against the options table as the command line does', async () => {
    const root = tempDir('bounds');
    for (const [name, value] of [['port', 70000], ['maxPendingConnections', 0], ['chunkSize', 10], ['headerTimeout', -1], ['readahead', 1.5]] as const) {
      await assert.rejects(startServer({ root, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false, [name]: value }),
        (e: Error & { code?: string }) => e.code === 'BAD_OPTION' && e.message.startsWith(`${name} (`), name);
    }
  });

  it('a store that cannot save holds the files in memory with one retry timer, reports once each way, and stops on close', async () => {
    const dir = tempDir('unsaved');
    let failing = true;
    class FlakyFolder extends LocalIndexFolder {
      override async write(name: string, bytes: Uint8Array): Promise<void> {
        if (failing) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        return super.write(name, bytes);
      }
    }
    const reports: string[] = [];
    const store = new IndexStore(dir, new FlakyFolder(join(dir, 'index')), () => Promise.reject(new Error('unused')), {
      onSaving: (r) => reports.push(r.saved ? 'saved' : 'failed'), retryMs: 20,
    });
    const image = smallImage(0, 0, 0, { salt: 'unsaved' });
    writeFileSync(join(dir, 'a.dcm'), image);
    const file = await indexFile(join(dir, 'a.dcm'));
    // Two saves failing together (a refresh's and a series rebuilt meanwhile).
    await Promise.all([store.writeSeries(file.series.seriesInstanceUid, [file]), store.writeSeries('2.25.1', [{ ...file, series: { ...file.series, seriesInstanceUid: '2.25.1' } }])]);
    assert.deepEqual(reports, ['failed']);
    assert.equal(store.unsavedFiles, 2);
    assert.equal((await store.readSeries(file.series.seriesInstanceUid)).files.length, 1, 'read from memory meanwhile');
    failing = false;
    await waitFor(() => reports.includes('saved'), 'saved once there is room');
    await sleep(100); // several retry intervals
    assert.deepEqual(reports, ['failed', 'saved'], 'one report each way: no timer left running');
    assert.equal(store.unsavedFiles, 0);
    assert.equal((await store.readSeries(file.series.seriesInstanceUid, true)).files.length, 1, 'on disk now');
    store.close();
  });

  it('uses a saved index on a read-only medium as it is (parsing nothing) and says why it cannot write it; `index` refuses before parsing', async () => {
    const root = tempDir('read-only');
    writeTree(root, 300, { salt: 'read-only' });
    const built = spawnSync(process.execPath, [cli, 'index', root, '--parse-workers', '1'], { encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    const readOnly = `mount --bind '${root}' '${root}' && mount -o remount,ro,bind '${root}'`;
    const server = inMountNamespace(readOnly, [process.execPath, cli, 'serve', root, '--port', '0', '--log-level', 'warn', '--no-watch']);
    try {
      const url = await servingUrl(server);
      assert.match(server.stdout(), /300 instances.*\(0 parsed, 300 from the saved index\)/);
      const warning = server.stderr();
      assert.match(warning, /index folder cannot be written: its saved index is used as it is/);
      assert.match(warning, /EROFS: read-only file system/, 'the real reason, not ENOENT');
      assert.match(warning, /give --index-dir a writable folder/);
      const c = await connect(url, { WebSocket });
      const [study] = await c.listStudies();
      const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
      assert.equal((await c.getFrame(series.instances[0]!.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);
      c.close();
    } finally {
      await server.stop();
    }
    // Told where to keep it, it does not tell the operator to do what they did.
    const elsewhere = join(tempDir('read-only-index'), 'index');
    const given = inMountNamespace(`${readOnly} && mount -o remount,ro,bind '${root}' && mkdir -p '${elsewhere}' && mount -t tmpfs -o ro tmpfs '${elsewhere}'`,
      [process.execPath, cli, 'serve', root, '--port', '0', '--log-level', 'warn', '--no-watch', '--index-dir', elsewhere]);
    try {
      await servingUrl(given);
      assert.match(given.stderr(), /the index is kept in memory only/);
      assert.doesNotMatch(given.stderr(), /--index-dir/);
    } finally {
      await given.stop();
    }
    const index = inMountNamespace(readOnly, [process.execPath, cli, 'index', root, '--index-dir', join(root, '.other-index')]);
    assert.equal(await index.exited, 1);
    assert.match(index.stderr(), /INDEX_NOT_WRITABLE: cannot write the index in .*EROFS/);
    assert.doesNotMatch(index.stdout() + index.stderr(), /parsed/, 'nothing parsed first');
  });

  it('on a full disk serves with the index in memory; when the disk fills while serving, new files are served and the index saved once there is room', async () => {
    const root = tempDir('full-disk');
    writeTree(root, 100, { salt: 'full-disk', perSeries: 100 });
    const indexDir = join(tempDir('full-disk-index'), 'index');
    mkdirSync(indexDir);
    const fill = (dir: string) => `mount -t tmpfs -o size=1m tmpfs '${dir}'`;
    // Full from the start: a ballast takes every byte.
    const full = inMountNamespace(`${fill(indexDir)} && (head -c 2m /dev/zero > '${indexDir}/ballast' 2>/dev/null; true)`,
      [process.execPath, cli, 'serve', root, '--port', '0', '--log-level', 'warn', '--no-watch', '--index-dir', indexDir]);
    try {
      const url = await servingUrl(full);
      assert.match(full.stderr(), /index folder cannot be written: the index is kept in memory only/);
      assert.match(full.stderr(), /ENOSPC/);
      assert.match(full.stdout(), /100 instances/);
      const c = await connect(url, { WebSocket });
      assert.equal((await c.listStudies()).length, 1);
      c.close();
    } finally {
      await full.stop();
    }

    // Filling up while serving (a script: the API's short retry interval).
    const script = join(tempDir('full-disk-script'), 'serve.mjs');
    writeFileSync(script, `import { createLogger, startServer } from ${JSON.stringify(join(dirname(cli), 'index.js'))};
const server = await startServer({ root: process.argv[2], indexDir: process.argv[3], host: '127.0.0.1', port: 0, log: createLogger('info'), rescanInterval: 0, saveRetryMs: 200 });
process.stdout.write('listening on ' + server.url + '\\n');
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
`);
    const serving = inMountNamespace(fill(indexDir), [process.execPath, script, root, indexDir]);
    try {
      const url = await servingUrl(serving);
      const saved = async () => (await new IndexStore(root, serving.seen(indexDir), () => Promise.reject(new Error('unused'))).readCatalogue())?.instances.length ?? 0;
      assert.equal(await saved(), 100);
      const ballast = serving.seen(join(indexDir, 'ballast'));
      try {
        writeFileSync(ballast, Buffer.alloc(2 * 1024 * 1024));
      } catch (e) {
        assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC', 'the disk is full');
      }
      const c = await connect(url, { WebSocket });
      const [original] = await c.listStudies();
      const images = Array.from({ length: 100 }, (_, i) => smallImage(1, 0, i, { salt: 'full-disk-new' }));
      mkdirSync(join(root, 'new'));
      images.forEach((bytes, i) => writeFileSync(join(root, 'new', `${i}.dcm`), bytes));
      await waitFor(async () => (await c.listStudies()).length === 2, 'the new files served while the disk is full', 10_000);
      await waitFor(() => /index cannot be saved: kept in memory/.test(serving.stderr()), 'the warning');
      assert.match(serving.stderr(), /ENOSPC/);
      assert.equal(await saved(), 100, 'the saved index is the old one, whole');
      const added = (await c.listStudies()).find((s) => s.studyInstanceUid !== original!.studyInstanceUid)!;
      const series = await c.openSeries(added.series[0]!.seriesInstanceUid);
      assert.equal(series.instances.length, 100);
      for (const i of series.instances) {
        const bytes = images[(i.instanceNumber ?? 0) - 1]!;
        assert.equal(sha256((await c.getFrame(i.sopInstanceUid, 1)).bytes), sha256(bytes.subarray(bytes.length - 64 * 64 * 2)), `new instance ${i.instanceNumber}`);
      }
      unlinkSync(ballast);
      await waitFor(() => /index saved again/.test(serving.stderr()), 'the index saved once there is room', 10_000);
      assert.equal(await saved(), 200, 'the new files are in the saved index');
      c.close();
    } finally {
      await serving.stop();
    }
  });

  it('reloads on SIGHUP (token and certificate read again, the folder rescanned) without cutting clients; progress goes out as JSON log lines', async () => {
    const root = tempDir('sighup');
    writeTree(root, 40, { salt: 'sighup', perSeries: 40 });
    const secrets = tempDir('sighup-secrets');
    const tls = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tls');
    const [cert, key, renewedCert, renewedKey] = ['cert.pem', 'key.pem', 'cert-renewed.pem', 'key-renewed.pem'].map((f) => readFileSync(join(tls, f)));
    const files = { token: join(secrets, 'token'), cert: join(secrets, 'cert.pem'), key: join(secrets, 'key.pem') };
    writeFileSync(files.token, 'first-token\n');
    writeFileSync(files.cert, cert!);
    writeFileSync(files.key, key!);
    const child = spawn(process.execPath, [cli, 'serve', root, '--port', '0', '--no-watch', '--index-dir', join(secrets, 'index'),
      '--token-file', files.token, '--tls-cert', files.cert, '--tls-key', files.key], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const trusting = (ca: Buffer) => class extends WebSocket { constructor(url: string) { super(url, { ca }); } } as unknown as typeof WebSocket;
    try {
      await waitFor(() => /listening on (\S+)/.test(out), 'the server', 20_000);
      const url = /listening on (\S+)/.exec(out)![1]!;
      // stderr is not a terminal: every line is a JSON log line, the indexing progress too.
      const lines = err.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; done?: number; total?: number });
      assert.ok(lines.some((l) => l.msg === 'indexing' && l.done === 40 && l.total === 40), err);
      const before = await connect(url, { WebSocket: trusting(cert!), token: 'first-token' });
      const [study] = await before.listStudies();
      const series = await before.openSeries(study!.series[0]!.seriesInstanceUid);

      writeFileSync(files.token, 'second-token\n');
      writeFileSync(files.cert, renewedCert!);
      writeFileSync(files.key, renewedKey!);
      writeFileSync(join(root, 'added.dcm'), smallImage(5, 0, 0, { salt: 'sighup-added' }));
      child.kill('SIGHUP');
      await waitFor(() => /"msg":"reloaded"/.test(err), 'the reload', 10_000);
      assert.equal(child.exitCode, null, 'still running');
      // The connection from before goes on.
      assert.equal((await before.getFrame(series.instances[0]!.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);
      assert.equal((await before.listStudies()).length, 2, 'the folder was rescanned');
      // New connections: the renewed certificate and the rotated token.
      await assert.rejects(connect(url, { WebSocket: trusting(cert!), token: 'second-token', reconnect: false }), 'the old certificate is no longer served');
      await assert.rejects(connect(url, { WebSocket: trusting(renewedCert!), token: 'first-token', reconnect: false }), (e: Error & { code?: string }) => e.code === 'UNAUTHENTICATED');
      const after = await connect(url, { WebSocket: trusting(renewedCert!), token: 'second-token' });
      assert.equal((await after.listStudies()).length, 2);
      after.close();
      before.close();
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
});
