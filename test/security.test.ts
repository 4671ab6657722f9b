// Access: open only on loopback; a static token; signed tokens (HS256, RS256) limited to studies
// and to a time, refreshed in-band without dropping a stream; an Origin allowlist; an embedder's
// hook. Everything refused is refused, and a study not allowed looks exactly like one that does
// not exist.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SignJWT, importPKCS8 } from 'jose';
import WebSocket from 'ws';
import { createLogger, startServer, type AccessPolicy, type RunningServer } from '../server/index.js';
import { connect, type DicomStreamClient, type ProtocolError } from '../web-client/index.js';
import { ErrorCode, PROTOCOL_VERSION } from '../shared/protocol.js';
import { filesDir } from './helpers/corpus.js';
import { RawClient, withServer } from './helpers/server.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tls');
const SECRET = 'a test secret of enough length for HS256';

async function hs256(claims: Record<string, unknown>, expiresIn: string | number = '1h'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(SECRET));
}

const code = (e: unknown) => (e as ProtocolError).code;

/** Two studies of the corpus: the one a token allows, another it does not; with one series and instance each. */
async function twoStudies(server: RunningServer) {
  const [a, b] = server.catalogue.listStudies(0, 100).studies;
  const seriesA = (await server.catalogue.series(a!.series[0]!.seriesInstanceUid))!;
  const seriesB = (await server.catalogue.series(b!.series[0]!.seriesInstanceUid))!;
  return { a: a!, b: b!, seriesA, seriesB };
}

describe('access', () => {
  it('refuses to start on a non-loopback address without an access policy', async () => {
    await assert.rejects(startServer({ root: filesDir, host: '0.0.0.0', port: 0, log: createLogger('silent'), watch: false, indexDir: false }),
      /without an access policy/);
  });

  it('with a static token: no token and a wrong one are refused; the right one, in Hello or a header, is let in', async () => {
    await withServer({ access: { token: 'sesame' } }, async (server) => {
      await assert.rejects(connect(server.url, { WebSocket }), (e) => code(e) === 'UNAUTHENTICATED' && /needs a token/.test((e as Error).message));
      await assert.rejects(connect(server.url, { WebSocket, token: 'nope' }), (e) => code(e) === 'UNAUTHENTICATED');
      const raw = new RawClient(server.url);
      await raw.open(false);
      raw.send({ listStudies: { requestId: 1 } });
      assert.equal((await raw.next()).kind === 'error', true, 'nothing before a handshake');
      raw.send({ hello: { protocolVersion: PROTOCOL_VERSION, token: 'wrong' } });
      const refused = await raw.next();
      assert.ok(refused.kind === 'error' && refused.error.code === ErrorCode.UNAUTHENTICATED);
      assert.equal(await raw.closed, 1008);

      const c = await connect(server.url, { WebSocket, token: 'sesame' });
      assert.ok((await c.listStudies()).length > 1);
      c.close();
      class HeaderSocket extends WebSocket {
        constructor(url: string) { super(url, { headers: { authorization: 'Bearer sesame' } }); }
      }
      const h = await connect(server.url, { WebSocket: HeaderSocket as unknown as typeof WebSocket });
      assert.ok((await h.listStudies()).length > 1);
      h.close();
    });
  });

  it('with signed tokens: shows only the studies a token names, hides the others exactly like unknown ones', async () => {
    await withServer({ access: { jwt: { secret: SECRET } } }, async (server) => {
      const { a, b, seriesA, seriesB } = await twoStudies(server);
      const c = await connect(server.url, { WebSocket, token: await hs256({ sub: 'reader', studies: [a.studyInstanceUid] }) });
      try {
        const studies = await c.listStudies();
        assert.deepEqual(studies.map((s) => s.studyInstanceUid), [a.studyInstanceUid]);
        assert.equal((await c.listStudiesPage(0, 10)).total, 1, 'the total does not count hidden studies');
        assert.equal((await c.openSeries(seriesA.seriesInstanceUid)).instances.length, seriesA.instances.length);
        const frame = await c.getFrame(seriesA.instances[0]!.sopInstanceUid, 1);
        assert.ok(frame.bytes.length > 0);

        // A hidden series and a series that does not exist get the same answer, but for the UID.
        const hidden = await c.openSeries(seriesB.seriesInstanceUid).catch((e: ProtocolError) => e);
        const missing = await c.openSeries('1.2.3.4.5.6.7.8.9').catch((e: ProtocolError) => e);
        assert.equal(code(hidden), 'UNKNOWN_SERIES');
        assert.equal(code(missing), 'UNKNOWN_SERIES');
        assert.equal((hidden as Error).message.replace(seriesB.seriesInstanceUid, 'X'), (missing as Error).message.replace('1.2.3.4.5.6.7.8.9', 'X'));
        // Frames of a hidden instance: the same as for an unknown one.
        const hiddenFrame = await c.getFrame(seriesB.instances[0]!.sopInstanceUid, 1).catch((e: ProtocolError) => e);
        const missingFrame = await c.getFrame('1.2.3.4.5.6.7.8.9', 1).catch((e: ProtocolError) => e);
        assert.equal(code(hiddenFrame), 'UNKNOWN_INSTANCE');
        assert.equal((hiddenFrame as Error).message.replace(seriesB.instances[0]!.sopInstanceUid, 'X'), (missingFrame as Error).message.replace('1.2.3.4.5.6.7.8.9', 'X'));
      } finally {
        c.close();
      }
      // "*" allows everything.
      const all = await connect(server.url, { WebSocket, token: await hs256({ studies: '*' }) });
      assert.ok((await all.listStudies()).some((s) => s.studyInstanceUid === b.studyInstanceUid));
      all.close();
      // A token signed with another key, and an expired one.
      const forged = await new SignJWT({ studies: '*' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode('another secret entirely, long'));
      await assert.rejects(connect(server.url, { WebSocket, token: forged }), (e) => code(e) === 'UNAUTHENTICATED' && /not valid/.test((e as Error).message));
      const expired = await hs256({ studies: '*' }, Math.floor(Date.now() / 1000) - 10);
      await assert.rejects(connect(server.url, { WebSocket, token: expired }), (e) => code(e) === 'UNAUTHENTICATED' && /expired/.test((e as Error).message));
    });
  });

  it('refuses requests once a token expires, and takes a refreshed one in-band without dropping the stream', async (t) => {
    await withServer({ access: { jwt: { secret: SECRET } }, chunkSize: 4096 }, async (server) => {
      const { a, seriesA } = await twoStudies(server);
      // Far enough ahead that a slow machine cannot reach it before the refresh.
      const soon = Math.floor(Date.now() / 1000) + 30;
      const c = await connect(server.url, { WebSocket, token: await hs256({ studies: [a.studyInstanceUid] }, soon), window: 16 * 1024 });
      try {
        // A stream in progress (a small window keeps it going) while the token is replaced.
        const frames = seriesA.instances.flatMap((i) => Array.from({ length: i.numberOfFrames }, (_, k) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: k + 1 })));
        const stream = c.requestFrames(frames);
        const expiresAt = await c.authenticate(await hs256({ studies: [a.studyInstanceUid] }, '1h'));
        assert.ok(expiresAt! > Date.now() + 3_000_000);
        let n = 0;
        for await (const f of stream) { assert.ok(f.bytes.length > 0); n++; }
        assert.equal(n, frames.length, 'every frame of the stream arrived across the refresh');
        // A refused refresh keeps the old grant.
        await assert.rejects(c.authenticate('garbage'), (e) => code(e) === 'UNAUTHENTICATED');
        assert.equal((await c.listStudies()).length, 1);
      } finally {
        c.close();
      }
      // Expiry mid-connection: requests refused with UNAUTHENTICATED until a new token comes.
      // (exp in whole seconds: +1 could be a millisecond away, so the token gets 30 s.)
      const exp = Math.floor(Date.now() / 1000) + 30;
      const d = await connect(server.url, { WebSocket, token: await hs256({ studies: [a.studyInstanceUid] }, exp) });
      try {
        // The clock moves past the expiry (timers stay real).
        t.mock.timers.enable({ apis: ['Date'], now: (exp + 2) * 1000 });
        await assert.rejects(d.listStudies(), (e) => code(e) === 'UNAUTHENTICATED' && /expired/.test((e as Error).message));
        await assert.rejects(d.openSeries(seriesA.seriesInstanceUid), (e) => code(e) === 'UNAUTHENTICATED');
        await d.authenticate(await hs256({ studies: [a.studyInstanceUid] }));
        assert.equal((await d.listStudies()).length, 1);
      } finally {
        t.mock.timers.reset();
        d.close();
      }
    });
  });

  it('checks RS256 tokens with a public key', async () => {
    const publicKey = readFileSync(join(fixtures, 'jwt-public.pem'), 'utf8');
    const privateKey = await importPKCS8(toPkcs8(readFileSync(join(fixtures, 'jwt-private.pem'), 'utf8')), 'RS256');
    await withServer({ access: { jwt: { publicKey, issuer: 'https://idp.example', audience: 'dicomstream' } } }, async (server) => {
      const sign = (claims: Record<string, unknown>, iss = 'https://idp.example') => new SignJWT(claims).setProtectedHeader({ alg: 'RS256' })
        .setIssuer(iss).setAudience('dicomstream').setExpirationTime('1h').sign(privateKey);
      const c = await connect(server.url, { WebSocket, token: await sign({ studies: '*' }) });
      assert.ok((await c.listStudies()).length > 1);
      c.close();
      await assert.rejects(connect(server.url, { WebSocket, token: await sign({ studies: '*' }, 'https://evil.example') }), (e) => code(e) === 'UNAUTHENTICATED');
      // An HS256 token made with the public key as its secret (algorithm confusion) is refused.
      const confused = await new SignJWT({ studies: '*' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://idp.example').setAudience('dicomstream')
        .setExpirationTime('1h').sign(new TextEncoder().encode(publicKey));
      await assert.rejects(connect(server.url, { WebSocket, token: confused }), (e) => code(e) === 'UNAUTHENTICATED');
    });
  });

  it('refuses a browser Origin not allowed (HTTP 403) and lets the allowed one in', async () => {
    await withServer({ access: { origins: ['https://viewer.example'] } }, async (server) => {
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(server.url, { origin: 'https://evil.example' });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
        ws.on('error', () => undefined);
      });
      assert.equal(status, 403);
      class Allowed extends WebSocket {
        constructor(url: string) { super(url, { origin: 'https://viewer.example' }); }
      }
      const c = await connect(server.url, { WebSocket: Allowed as unknown as typeof WebSocket });
      assert.ok((await c.listStudies()).length > 0);
      c.close();
    });
  });

  it('asks the embedder\'s authorize hook about every study, with the request and the token\'s claims', async () => {
    const asked: string[] = [];
    let allowed = '';
    const access: AccessPolicy = {
      jwt: { secret: SECRET },
      authorize: (request, study) => {
        asked.push(`${String(request.claims?.sub)}@${request.remoteAddress}`);
        return study === allowed;
      },
    };
    await withServer({ access }, async (server) => {
      const { a, b, seriesB } = await twoStudies(server);
      allowed = a.studyInstanceUid;
      const c: DicomStreamClient = await connect(server.url, { WebSocket, token: await hs256({ sub: 'dr-who', studies: '*' }) });
      try {
        assert.deepEqual((await c.listStudies()).map((s) => s.studyInstanceUid), [a.studyInstanceUid]);
        await assert.rejects(c.openSeries(seriesB.seriesInstanceUid), (e) => code(e) === 'UNKNOWN_SERIES');
        assert.ok(asked.length >= 2 && asked.every((x) => /^dr-who@(::ffff:)?127\.0\.0\.1$/.test(x)), asked.join(', '));
        void b;
      } finally {
        c.close();
      }
    });
  });
});

/** `openssl genrsa` writes PKCS#1 on some versions and PKCS#8 on others: jose wants PKCS#8. */
function toPkcs8(pem: string): string {
  if (pem.includes('BEGIN PRIVATE KEY')) return pem;
  throw new Error('test key is not PKCS#8: regenerate it with `openssl genpkey -algorithm RSA`');
}
