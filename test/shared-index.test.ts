// One saved index shared by many servers: `dicomstream index` writes it apart from the archive,
// replicas serve it with --read-only-index (nothing parsed, nothing written) and follow its new
// versions; a second writer of one index is refused with its owner named, never interleaved.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createLogger, startServer, type RunningServer, type ServerOptions } from '../server/index.js';
import { LocalIndexFolder } from '../server/index/index-folder.js';
import { IndexLock, LOCK_FILE } from '../server/index/index-lock.js';
import { smallImage, writeTree } from '../server/sample/tree.js';
import { connect, type SeriesUpdated } from '../web-client/index.js';
import { filesDir, servedFrameHashes, sha256 } from './helpers/corpus.js';
import { waitFor } from './helpers/wait-for.js';
import { listing } from './helpers/folder-listing.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server', 'cli.js');
const code = (e: unknown) => (e as { code?: string }).code;

function indexCli(root: string, indexDir: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'index', root, '--index-dir', indexDir, '--parse-workers', '1'], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function serve(root: string, options: Partial<ServerOptions>): Promise<RunningServer> {
  return startServer({ root, host: '127.0.0.1', port: 0, log: createLogger('silent'), watch: false, ...options });
}

describe('index lock: one writer at a time', () => {
  let dir = '';
  before(() => { dir = mkdtempSync(join(tmpdir(), 'dicomstream-lock-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a second writer with its owner named, and lets the next one in after release', async () => {
    const first = await IndexLock.acquire(dir, 'index');
    await assert.rejects(IndexLock.acquire(dir, 'serve'), (e: Error) =>
      code(e) === 'INDEX_LOCKED' && e.message.includes(`pid ${process.pid} on ${hostname()}`) && /dicomstream index/.test(e.message) && /--read-only-index/.test(e.message));
    await first.release();
    const second = await IndexLock.acquire(dir, 'serve');
    await second.release();
  });

  it('takes over a lock naming this very pid that is not its own (a restarted container); never one it cannot read', async () => {
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: hostname(), command: 'serve', since: '2026-01-01T00:00:00Z' }));
    const lock = await IndexLock.acquire(dir, 'serve');
    await lock.release();
    // A store that does not answer the read of the lock says nothing of its owner: refused, the lock untouched.
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'archive-2.example', command: 'index', since: '2026-01-01T00:00:00Z' }));
    const folder = new LocalIndexFolder(dir);
    const unreadable = Object.assign(Object.create(folder) as LocalIndexFolder, { read: () => Promise.reject(new Error('503 Slow Down')) });
    await assert.rejects(IndexLock.acquire(unreadable, 'index'), /503 Slow Down/);
    assert.match(readFileSync(join(dir, LOCK_FILE), 'utf8'), /archive-2\.example/);
    rmSync(join(dir, LOCK_FILE));
  });

  it('takes over a lock left by a process that died on this host; not one from another host', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: Number(dead.stdout), host: hostname(), command: 'index', since: '2026-01-01T00:00:00Z' }));
    const lock = await IndexLock.acquire(dir, 'index');
    await lock.release();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'archive-2.example', command: 'index', since: '2026-01-01T00:00:00Z' }));
    await assert.rejects(IndexLock.acquire(dir, 'index'), (e: Error) =>
      code(e) === 'INDEX_LOCKED' && /archive-2\.example/.test(e.message) && e.message.includes(`remove ${join(dir, LOCK_FILE)}`));
    unlinkSync(join(dir, LOCK_FILE));
  });

  it('`dicomstream index` exits 1 with INDEX_LOCKED while a server writes the same index, and runs once it stopped', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dicomstream-lock-tree-'));
    const indexDir = join(dir, 'shared');
    try {
      writeTree(root, 6, { perSeries: 3, seriesPerStudy: 1, salt: 'lock' });
      const server = await serve(root, { indexDir });
      const refused = indexCli(root, indexDir);
      // A second writable server is refused the same way.
      await assert.rejects(serve(root, { indexDir }), (e) => code(e) === 'INDEX_LOCKED');
      await server.close();
      assert.equal(refused.status, 1, refused.stderr);
      assert.match(refused.stderr, /INDEX_LOCKED: the index in .* is being written by pid \d+ on .* \(dicomstream serve, since /);
      const ran = indexCli(root, indexDir);
      assert.equal(ran.status, 0, ran.stderr);
      assert.deepEqual(readdirSync(indexDir).filter((f) => f === LOCK_FILE), [], 'the lock is gone after the run');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('lets go of the lock when `dicomstream index` is interrupted', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dicomstream-lock-int-'));
    const indexDir = join(dir, 'interrupted');
    try {
      writeTree(root, 400, { perSeries: 20, seriesPerStudy: 2, salt: 'int' });
      const child = spawn(process.execPath, [cli, 'index', root, '--index-dir', indexDir, '--parse-workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
      await waitFor(() => { try { return readdirSync(indexDir).includes(LOCK_FILE); } catch { return false; } }, 'the lock', 10_000);
      let err = '';
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      child.kill('SIGINT');
      const status = await new Promise((resolve) => child.once('exit', (c, sig) => resolve(c ?? sig)));
      assert.equal(status, 130, err);
      assert.equal(readdirSync(indexDir).includes(LOCK_FILE), false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('replicas on a shared read-only index', () => {
  let root = '';
  let indexDir = '';
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'dicomstream-archive-'));
    cpSync(filesDir, root, { recursive: true, filter: (src) => !src.includes('.dicomstream') });
    indexDir = mkdtempSync(join(tmpdir(), 'dicomstream-shared-index-'));
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(indexDir, { recursive: true, force: true });
  });

  it('refuses to start read-only without a saved index', async () => {
    await assert.rejects(serve(root, { indexDir, readOnlyIndex: true }), (e: Error) => code(e) === 'NO_SAVED_INDEX' && /dicomstream index/.test(e.message));
  });

  it('serves every corpus frame byte-exact from an index written apart by `dicomstream index`, parsing and writing nothing', async () => {
    const written = indexCli(root, indexDir);
    assert.equal(written.status, 0, written.stderr);
    const before = listing(indexDir);
    const replicas = [await serve(root, { indexDir, readOnlyIndex: true }), await serve(root, { indexDir, readOnlyIndex: true })];
    try {
      const expected = servedFrameHashes();
      for (const replica of replicas) {
        assert.equal(replica.parses, 0, 'nothing parsed at start');
        const c = await connect(replica.url, { WebSocket });
        let checked = 0;
        for (const study of await c.listStudies()) {
          for (const s of study.series) {
            const series = await c.openSeries(s.seriesInstanceUid);
            for (const instance of series.instances) {
              const hashes = expected.get(instance.sopInstanceUid);
              if (!hashes) continue;
              for (let n = 1; n <= instance.numberOfFrames; n++) {
                assert.ok(hashes[n - 1]?.has(sha256((await c.getFrame(instance.sopInstanceUid, n)).bytes)), `${instance.sopInstanceUid}#${n}`);
                checked++;
              }
            }
          }
        }
        c.close();
        assert.equal(checked, [...expected.values()].reduce((n, frames) => n + frames.length, 0), 'every served corpus frame checked');
        assert.equal(replica.parses, 0, 'nothing parsed to serve');
      }
      assert.deepEqual(listing(indexDir), before, 'the replicas wrote nothing in the index folder');
    } finally {
      for (const r of replicas) await r.close();
    }
  });

  it('follows the writer\'s new versions: added and deleted files reach clients with the series open, without a restart', async () => {
    const tree = mkdtempSync(join(tmpdir(), 'dicomstream-archive-live-'));
    const liveIndex = join(indexDir, 'live');
    try {
      writeTree(tree, 6, { perSeries: 3, seriesPerStudy: 2, salt: 'replica' });
      assert.equal(indexCli(tree, liveIndex).status, 0);
      const replica = await serve(tree, { indexDir: liveIndex, readOnlyIndex: true, indexPollMs: 50 });
      const c = await connect(replica.url, { WebSocket });
      try {
        const updates: SeriesUpdated[] = [];
        c.onSeriesUpdated((u) => updates.push(u));
        const [study] = await c.listStudies();
        const seriesUid = study!.series[0]!.seriesInstanceUid;
        const other = study!.series[1]!.seriesInstanceUid;
        assert.equal((await c.openSeries(seriesUid)).instances.length, 3);
        await c.openSeries(other);
        // A file added to the archive is not served until the writer has indexed it.
        writeFileSync(join(tree, 'study-0', 'series-0', '3.dcm'), smallImage(0, 0, 3, { salt: 'replica' }));
        assert.equal(indexCli(tree, liveIndex).status, 0);
        await waitFor(() => updates.length >= 1, 'the new version', 10_000);
        assert.deepEqual(updates, [{ seriesInstanceUid: seriesUid, removed: false }], 'only the series that changed');
        const grown = await c.openSeries(seriesUid);
        assert.equal(grown.instances.length, 4);
        const added = grown.instances.find((i) => i.instanceNumber === 4)!;
        assert.equal((await c.getFrame(added.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);
        // The other series gone from the archive and the index: announced removed.
        rmSync(join(tree, 'study-0', 'series-1'), { recursive: true });
        assert.equal(indexCli(tree, liveIndex).status, 0);
        await waitFor(() => updates.length >= 2, 'the removal', 10_000);
        assert.deepEqual(updates[1], { seriesInstanceUid: other, removed: true });
        await assert.rejects(c.openSeries(other), /no series/);
        assert.equal(replica.parses, 0, 'the replica parsed nothing itself');
      } finally {
        c.close();
        await replica.close();
      }
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });
});
