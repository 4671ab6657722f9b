// The baseline server of bench/stream.ts, run as its own process: a bare `ws` server that holds the
// frames in memory and answers any message by sending every frame, one binary message each, in order,
// with no flow control, no file reads and no protocol.
//
// Usage: node bench/bare-ws-server.mjs < ranges.json
// stdin: a JSON array of { "path": string, "offset": number, "length": number }, one entry per frame,
// in the order the frames are to be sent (bench/stream.ts finds each file's Pixel Data with dicom-parser).
// Listens on 127.0.0.1, any free port, and prints `listening on ws://127.0.0.1:PORT/`.
// The same port answers `GET /frames/{n}` (n from 1, in stdin's order) with frame n as the one part
// of a multipart/related answer shaped like a WADO-RS frame's: the bare HTTP baseline of bench:dicomweb.
// SIGTERM or SIGINT ends it.
import { closeSync, openSync, readSync } from 'node:fs';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads exactly `length` bytes at `offset` of `path`, into a buffer of its own. */
function readRange({ path, offset, length }) {
  const bytes = Buffer.allocUnsafe(length);
  const fd = openSync(path, 'r');
  try {
    for (let done = 0; done < length;) {
      const n = readSync(fd, bytes, done, length - done, offset + done);
      if (n === 0) throw new Error(`${path} ends before byte ${offset + length}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

function isRange(r) {
  return r !== null && typeof r === 'object' && typeof r.path === 'string' &&
    Number.isSafeInteger(r.offset) && r.offset >= 0 && Number.isSafeInteger(r.length) && r.length >= 0;
}

async function main() {
  const ranges = JSON.parse(await readStdin());
  if (!Array.isArray(ranges) || ranges.length === 0 || !ranges.every(isRange)) {
    throw new Error('stdin must be a non-empty JSON array of { path, offset, length }');
  }
  const frames = ranges.map(readRange);
  const total = frames.reduce((n, f) => n + f.length, 0);

  // One answer per frame, made once: the HTTP baseline does nothing per request but parse and write.
  const answers = frames.map((f, i) => {
    const boundary = `bare-${i}`;
    const head = Buffer.from(`--${boundary}\r\nContent-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\r\nContent-Length: ${f.length}\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    return { type: `multipart/related; type="application/octet-stream"; boundary=${boundary}`, parts: [head, f, tail], length: head.length + f.length + tail.length };
  });
  const http = createServer((req, res) => {
    const n = /^\/frames\/(\d+)$/.exec(req.url ?? '')?.[1];
    const answer = n === undefined ? undefined : answers[Number(n) - 1];
    if (!answer) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': answer.type, 'content-length': answer.length });
    res.cork();
    res.write(answer.parts[0]);
    res.write(answer.parts[1]);
    res.end(answer.parts[2]);
    process.nextTick(() => res.uncork());
  });
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  wss.on('connection', (ws) => {
    ws.on('error', (e) => process.stderr.write(`bare-ws-server: socket error: ${e.message}\n`));
    ws.on('message', () => { for (const f of frames) ws.send(f, { binary: true }); });
  });
  await new Promise((ok, fail) => { http.once('error', fail); http.listen(0, '127.0.0.1', ok); });
  const stop = () => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    http.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(`loaded ${frames.length} frames, ${total} bytes\n`);
  process.stdout.write(`listening on ws://127.0.0.1:${http.address().port}/\n`);
}

main().catch((e) => {
  process.stderr.write(`bare-ws-server: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
