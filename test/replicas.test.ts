// Replicas behind a real load balancer: three `dicomstream serve --read-only-index` processes on
// one shared index, HAProxy in front with the project's deploy/haproxy.cfg (consistent hashing on
// the series, health checks on /readyz). A replica killed with SIGKILL mid-series: the client
// reconnects through HAProxy on its own and the application gets every frame once, byte-exact, in
// its focus order; a replica stopped with SIGTERM is left for the others the same way.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { writeTree } from '../server/sample/tree.js';
import { connect, type ConnectionState, type ReconnectInfo } from '../web-client/index.js';
import { sha256 } from './helpers/corpus.js';
import { CLI, connectionsOf, startHaproxy, startReplica, stopReplica, type Balancer, type Replica } from './helpers/replicas.js';

const FOCUS = 40;

describe('replicas behind HAProxy', () => {
  let root = '';
  let indexDir = '';
  let replicas: Replica[] = [];
  let balancer: Balancer | undefined;
  /** The series' frames as a replica serves them, by SOP Instance UID (sha256). */
  const expected = new Map<string, string>();
  const series: string[] = [];

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'dicomstream-replicas-'));
    indexDir = mkdtempSync(join(tmpdir(), 'dicomstream-replicas-index-'));
    writeTree(root, 120, { perSeries: 60, seriesPerStudy: 2, salt: 'replicas' });
    const indexed = spawnSync(process.execPath, [CLI, 'index', root, '--index-dir', indexDir, '--parse-workers', '1'], { encoding: 'utf8' });
    assert.equal(indexed.status, 0, indexed.stderr);
    // A short drain, so the SIGTERM test sees one end before its slow consumer is done.
    replicas = await Promise.all([0, 1, 2].map(() => startReplica(root, indexDir, ['--shutdown-timeout', '1'])));
    balancer = await startHaproxy(replicas.map((r) => r.port));
    // The reference: every frame straight from one replica.
    const direct = await connect(`ws://127.0.0.1:${replicas[0]!.port}/`, { WebSocket });
    for (const study of await direct.listStudies()) {
      for (const s of study.series) {
        series.push(s.seriesInstanceUid);
        for (const instance of (await direct.openSeries(s.seriesInstanceUid)).instances) {
          expected.set(instance.sopInstanceUid, sha256((await direct.getFrame(instance.sopInstanceUid, 1)).bytes));
        }
      }
    }
    direct.close();
  });

  after(async () => {
    await balancer?.stop();
    await Promise.all(replicas.map((r) => stopReplica(r, 'SIGKILL')));
    rmSync(root, { recursive: true, force: true });
    rmSync(indexDir, { recursive: true, force: true });
  });

  /** The replicas with a connection open now. */
  async function serving(): Promise<Replica[]> {
    const live = replicas.filter((r) => r.process.exitCode === null && r.process.signalCode === null);
    const counts = await Promise.all(live.map((r) => connectionsOf(r)));
    return live.filter((_, i) => counts[i]! > 0);
  }

  it('sends one series to one replica, its HTTP stream too, and another series maybe elsewhere', async () => {
    const c = await connect(`ws://127.0.0.1:${balancer!.port}/?series=${series[0]}`, { WebSocket, httpStream: true });
    try {
      assert.equal(c.transport, 'http-stream', `the GET reached the WebSocket's replica (${c.httpStreamError?.message ?? ''})`);
      const manifest = await c.openSeries(series[0]!);
      assert.equal(manifest.instances.length, 60);
      assert.equal((await serving()).length, 1);
      // The same series always lands on the same replica (its caches stay warm).
      const first = (await serving())[0]!;
      for (let i = 0; i < 3; i++) {
        const again = await connect(`ws://127.0.0.1:${balancer!.port}/?series=${series[0]}`, { WebSocket });
        assert.deepEqual(await serving(), [first]);
        again.close();
      }
    } finally {
      c.close();
    }
  });

  it('a replica killed mid-series (SIGKILL): the client reconnects through HAProxy and gets every frame once, byte-exact, focus first', async () => {
    const uid = series[1]!;
    const url = `ws://127.0.0.1:${balancer!.port}/?series=${uid}`;
    // A small window and a consumer that takes its time keep the series in flight for a while.
    const c = await connect(url, { WebSocket, window: 32 * 1024, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
    const states: ConnectionState[] = [];
    const reconnects: ReconnectInfo[] = [];
    c.onStateChange((state) => states.push(state));
    c.onReconnect((info) => reconnects.push(info));
    try {
      const manifest = await c.openSeries(uid);
      const frames = manifest.instances.map((i, position) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1, position }));
      const positionOf = new Map(frames.map((f) => [f.sopInstanceUid, f.position]));
      const group = c.newGroup({ focus: FOCUS });
      const arrived: string[] = [];
      let killed: Replica | undefined;
      let arrivedBeforeKill = 0;
      const stream = c.requestFrames(frames, {
        priority: 5, group,
        onFrame: async (frame) => {
          arrived.push(frame.sopInstanceUid);
          assert.equal(sha256(frame.bytes), expected.get(frame.sopInstanceUid), `frame of ${frame.sopInstanceUid} byte-exact`);
          if (arrived.length === 12 && !killed) {
            [killed] = await serving();
            arrivedBeforeKill = arrived.length;
            killed!.process.kill('SIGKILL');
          }
          await new Promise((resolve) => setTimeout(resolve, 3));
        },
      });
      const summary = await stream.done;
      assert.ok(killed, 'a replica was killed');
      await killed.exited;
      assert.equal(arrived.length, frames.length, 'every frame arrived');
      assert.equal(new Set(arrived).size, frames.length, 'each once');
      assert.equal(summary.framesSent, frames.length);
      assert.equal(summary.cancelled, false);
      assert.deepEqual(summary.errors, []);
      assert.deepEqual(states.slice(0, 2), ['reconnecting', 'open']);
      assert.equal(reconnects.length, 1);
      assert.equal(reconnects[0]!.requests, 1);
      // What the new connection was asked for: what had not come (a few were in flight or in the backlog).
      assert.ok(reconnects[0]!.frames <= frames.length - arrivedBeforeKill + 4 && reconnects[0]!.frames > 0, `${reconnects[0]!.frames} frames asked again`);
      // Focus kept: the first frames of each connection are the ones nearest the focus that were still to come.
      assert.equal(positionOf.get(arrived[0]!), FOCUS);
      const afterKill = arrived.slice(arrived.length - reconnects[0]!.frames);
      const left = afterKill.map((u) => positionOf.get(u)!);
      const nearest = Math.min(...left.map((p) => Math.abs(p - FOCUS)));
      assert.equal(Math.abs(left[0]! - FOCUS), nearest, `after the reconnect, position ${left[0]} first (focus ${FOCUS})`);
      // The client is on another replica now.
      const now = await serving();
      assert.equal(now.length, 1);
      assert.notEqual(now[0], killed);
    } finally {
      c.close();
    }
  });

  it('a replica stopped (SIGTERM) drains: it finishes what it can, closes with 1001, exits 0, and its client resumes on another', async () => {
    const uid = series[0]!;
    const c = await connect(`ws://127.0.0.1:${balancer!.port}/?series=${uid}`, { WebSocket, window: 16 * 1024, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
    const reconnects: ReconnectInfo[] = [];
    c.onReconnect((info) => reconnects.push(info));
    try {
      const manifest = await c.openSeries(uid);
      const frames = manifest.instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 }));
      const arrived: string[] = [];
      let stopped: Replica | undefined;
      // A consumer slower than the shutdown deadline (two 8 KiB frames in hand at a time, 100 ms
      // each): the drain ends with frames still owed.
      const stream = c.requestFrames(frames, {
        onFrame: async (frame) => {
          arrived.push(frame.sopInstanceUid);
          assert.equal(sha256(frame.bytes), expected.get(frame.sopInstanceUid));
          if (arrived.length === 5 && !stopped) {
            [stopped] = await serving();
            stopped!.process.kill('SIGTERM');
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        },
      });
      const summary = await stream.done;
      assert.ok(stopped);
      await stopped.exited;
      assert.equal(stopped.process.exitCode, 0, 'a clean exit');
      assert.equal(arrived.length, frames.length);
      assert.equal(new Set(arrived).size, frames.length, 'each once');
      assert.equal(summary.framesSent, frames.length);
      assert.equal(reconnects.length, 1);
      assert.match(reconnects[0]!.reason, /1001/, 'the replica said it was going away');
      const now = await serving();
      assert.equal(now.length, 1);
      assert.notEqual(now[0], stopped);
    } finally {
      c.close();
    }
  });
});
