// One whole-series fetch from a fresh process, for bench/stream.ts's "fresh client process" rows:
// what a viewer's first load costs before any JIT warm-up. Plain JavaScript on the built client
// (dist/), so that nothing but Node and the client is loaded.
//
// Usage: node bench/stream-once.mjs dicomstream <ws url> <series uid>
//        node bench/stream-once.mjs bare <ws url> <frames>
// Prints one JSON line: { ms, ttffMs, frames: [{ uid, length, sha256 }] } (uid: '' for bare).
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { connect } from '../dist/web-client/index.js';

const [kind, url, arg] = process.argv.slice(2);
const started = performance.now();
const received = [];
let first;

if (kind === 'dicomstream') {
  const client = await connect(url, { WebSocket, clientName: 'bench-once' });
  const series = await client.openSeries(arg);
  for await (const frame of client.requestFrames(series.instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 })))) {
    first ??= performance.now();
    received.push({ uid: frame.sopInstanceUid, bytes: frame.bytes });
  }
  client.close();
} else if (kind === 'bare') {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  await new Promise((ok) => {
    ws.on('message', (data) => {
      first ??= performance.now();
      received.push({ uid: '', bytes: data });
      if (received.length === Number(arg)) ok();
    });
    ws.send('all');
  });
  ws.close();
} else {
  console.error('usage: stream-once.mjs dicomstream|bare <url> <series uid | frames>');
  process.exit(2);
}
const ms = performance.now() - started;
// Hashed after the clock stopped.
const frames = received.map(({ uid, bytes }) => ({ uid, length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }));
console.log(JSON.stringify({ ms, ttffMs: first - started, frames }));
