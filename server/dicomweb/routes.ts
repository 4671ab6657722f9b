// DICOMweb on the stream's server: QIDO-RS searches and WADO-RS retrieval under a base path
// (default /dicomweb), with the stream's access policy (a bearer token or JWT; a study the token
// may not see is answered exactly as one that does not exist) and its Origin allowlist (CORS,
// preflight answered). Routes to the handlers of qido.ts and retrieve.ts; every refusal is an
// HTTP status with a plain-text message, never a crash.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { AccessError, bearerToken, type AccessControl } from '../access.js';
import { peerAddress, type ClientAddressOf } from '../client-address.js';
import type { FrameSource } from '../files/frame-source.js';
import type { Catalogue, StudyEntry } from '../index/catalogue.js';
import type { RequestHandler } from '../http-routes.js';
import type { Logger } from '../log.js';
import { printable } from '../transport/refusals.js';
import { SessionAccess } from '../transport/session-access.js';
import { acceptsJson, parseAccept } from './accept.js';
import { dictionary } from './dictionary.js';
import { HttpError } from './http-error.js';
import { parseQuery, renderRows, search, QIDO_MAX_RESULTS, type Scope } from './qido.js';
import type { Level, RetrieveUrls } from './qido-attributes.js';
import { QueryError } from './qido-match.js';
import { Retriever, type Resolved } from './retrieve.js';

export interface DicomWebOptions {
  /** The full path prefix, e.g. '/dicomweb'. */
  base: string;
  catalogue: () => Catalogue;
  frames: FrameSource;
  access: AccessControl;
  /** The client's address of a request (the authorize hook sees it): default, the TCP peer's. */
  clientAddress?: ClientAddressOf;
  log: Logger;
}

/** Frames one request may name. */
const MAX_FRAMES_PER_REQUEST = 10_000;
const JSON_TYPE = 'application/dicom+json';

/** What a request may see, from its Authorization header. */
interface Caller {
  access: SessionAccess;
  urls: RetrieveUrls;
  root: string;
}

export function dicomWebRoutes(options: DicomWebOptions): RequestHandler {
  const { base, log } = options;
  const retriever = new Retriever(options.frames, dictionary);
  return (req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    if (path !== base && !path.startsWith(`${base}/`)) return false;
    answer(req, res, path.slice(base.length), url.includes('?') ? url.slice(url.indexOf('?') + 1) : '').catch((e: unknown) => {
      if (e instanceof HttpError || e instanceof QueryError) return refuse(res, e instanceof HttpError ? e.status : 400, e.message);
      if (e instanceof AccessError) {
        res.setHeader('www-authenticate', 'Bearer');
        return refuse(res, 401, e.message);
      }
      log.error('DICOMweb request failed', { url: url.slice(0, 300), error: (e as Error)?.message ?? String(e) });
      if (res.headersSent) res.destroy(); // mid-answer: the client sees a cut-off response, not a wrong one
      else refuse(res, 500, 'internal error (logged on the server)');
    });
    return true;
  };

  async function answer(req: IncomingMessage, res: ServerResponse, path: string, queryString: string): Promise<void> {
    const origin = req.headers.origin;
    if (!options.access.originAllowed(origin)) throw new HttpError(403, `origin ${origin} is not allowed`);
    if (origin) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
      res.setHeader('access-control-expose-headers', 'Content-Type, Content-Length, Content-Location, Warning');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-allow-headers': req.headers['access-control-request-headers'] ?? 'Authorization, Accept',
        'access-control-max-age': '600',
      });
      res.end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD, OPTIONS');
      throw new HttpError(405, `${req.method} is not served: this is a read-only DICOMweb server (QIDO-RS, WADO-RS)`);
    }
    const caller = await callerOf(req);
    let segments: string[];
    try {
      segments = path.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw new HttpError(400, 'malformed percent-encoding in the path');
    }
    await route(req, res, segments, new URLSearchParams(queryString), caller);
  }

  async function callerOf(req: IncomingMessage): Promise<Caller> {
    const access = new SessionAccess(options.access, { remoteAddress: (options.clientAddress ?? peerAddress)(req), origin: req.headers.origin, headers: req.headers }, bearerToken(req.headers));
    await access.login(undefined);
    const scheme = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
    const root = `${scheme}://${req.headers.host ?? '127.0.0.1'}${base}`;
    const urls: RetrieveUrls = {
      study: (s) => `${root}/studies/${s}`,
      series: (s, se) => `${root}/studies/${s}/series/${se}`,
      instance: (s, se, i) => `${root}/studies/${s}/series/${se}/instances/${i}`,
    };
    return { access, urls, root };
  }

  async function route(req: IncomingMessage, res: ServerResponse, p: string[], params: URLSearchParams, caller: Caller): Promise<void> {
    const accept = parseAccept(req.headers.accept);
    const [top, study, second, series, third] = p;
    if (p.length === 1 && (top === 'studies' || top === 'series' || top === 'instances')) {
      return qido(res, top === 'studies' ? 'study' : top === 'series' ? 'series' : 'instance', {}, params, caller, accept);
    }
    if (top !== 'studies' || study === undefined) throw new HttpError(404, 'no such DICOMweb resource: see /studies, /series, /instances');
    if (p.length === 3 && (second === 'series' || second === 'instances')) {
      return qido(res, second === 'series' ? 'series' : 'instance', { studyInstanceUid: study }, params, caller, accept);
    }
    if (p.length === 5 && second === 'series' && third === 'instances') {
      return qido(res, 'instance', { studyInstanceUid: study, seriesInstanceUid: series }, params, caller, accept);
    }
    const resource = resourceOf(p);
    if (!resource) throw new HttpError(404, 'no such DICOMweb resource');
    const resolved = await resolve(caller, resource.study, resource.series, resource.instance);
    switch (resource.kind) {
      case 'instances': return retriever.instances(res, resolved, accept);
      case 'metadata':
        if (!acceptsJson(accept)) throw new HttpError(406, `metadata is available as ${JSON_TYPE}`);
        return json(res, await retriever.metadata(resolved));
      case 'frames': return retriever.frames(res, resolved[0]!, frameNumbers(resource.rest[0]!), accept);
      case 'bulkdata': return retriever.bulkdata(res, resolved[0]!, resource.rest, accept);
    }
  }

  /** The instances a path names, visible to the caller; 404 for what does not exist or may not be seen alike. */
  async function resolve(caller: Caller, studyUid: string, seriesUid: string | undefined, sopUid: string | undefined): Promise<Resolved[]> {
    const catalogue = options.catalogue();
    const study = catalogue.studyEntry(studyUid);
    if (!study || (await visibleStudies(caller, [study])).length === 0) throw new HttpError(404, `no study ${printable(studyUid)}`);
    const seriesList = seriesUid === undefined ? study.series : study.series.filter((s) => s.facts.seriesInstanceUid === seriesUid);
    if (seriesList.length === 0) throw new HttpError(404, `no series ${printable(seriesUid!)} in study ${printable(studyUid)}`);
    const url = (seriesUid: string, sop: string) => caller.urls.instance(studyUid, seriesUid, sop);
    if (sopUid !== undefined) {
      // One instance (frames, bulk data: the hot path): found by its record, not by walking the series.
      const record = catalogue.record(sopUid);
      const series = record && record.seriesInstanceUid === seriesUid ? await catalogue.openSeries(record.seriesInstanceUid) : undefined;
      const file = series?.files.get(sopUid);
      if (!series || !file) throw new HttpError(404, `no instance ${printable(sopUid)} in that series`);
      return [{ file, url: url(seriesUid!, sopUid), place: { series, position: series.positions.get(sopUid)! } }];
    }
    const out: Resolved[] = [];
    for (const series of seriesList) {
      const opened = await catalogue.openSeries(series.facts.seriesInstanceUid);
      for (const image of opened?.manifest.instances ?? []) {
        const file = opened!.files.get(image.sopInstanceUid);
        if (file) out.push({ file, url: url(series.facts.seriesInstanceUid, image.sopInstanceUid) });
      }
    }
    if (out.length === 0) throw new HttpError(404, 'no instances');
    return out;
  }

  async function qido(res: ServerResponse, level: Level, scope: Scope, params: URLSearchParams, caller: Caller, accept: ReturnType<typeof parseAccept>): Promise<void> {
    if (!acceptsJson(accept)) throw new HttpError(406, `search results are available as ${JSON_TYPE}`);
    const query = parseQuery(params, level, scope, await dictionary());
    const found = await search(options.catalogue(), query, (studies) => visibleStudies(caller, studies), caller.urls);
    if (!found) throw new HttpError(404, scope.seriesInstanceUid ? `no series ${printable(scope.seriesInstanceUid)} in study ${printable(scope.studyInstanceUid!)}` : `no study ${printable(scope.studyInstanceUid!)}`);
    if (found.more) res.setHeader('warning', `299 dicomstream "There are more results: at most ${QIDO_MAX_RESULTS} a request; ask again with offset=${query.offset + found.rows.length}"`);
    jsonText(res, renderRows(query, found.rows, caller.urls));
  }
}

interface Resource {
  kind: 'instances' | 'metadata' | 'frames' | 'bulkdata';
  study: string;
  series?: string;
  instance?: string;
  /** The frame list, or the bulk data path. */
  rest: string[];
}

/** A WADO-RS path: `studies/{s}[/series/{se}[/instances/{i}]]` then nothing, `metadata`, `frames/{list}` or `bulkdata/{path}`. */
function resourceOf(p: string[]): Resource | undefined {
  if (p[0] !== 'studies' || p[1] === undefined) return undefined;
  const ids = [p[1]];
  let i = 2;
  if (p[i] === 'series' && p[i + 1] !== undefined) {
    ids.push(p[i + 1]!);
    i += 2;
    if (p[i] === 'instances' && p[i + 1] !== undefined) {
      ids.push(p[i + 1]!);
      i += 2;
    }
  }
  const [study, series, instance] = ids;
  const rest = p.slice(i + 1);
  const at = { study: study!, series, instance, rest };
  if (p[i] === undefined) return { kind: 'instances', ...at };
  if (p[i] === 'metadata' && rest.length === 0) return { kind: 'metadata', ...at };
  if (instance !== undefined && p[i] === 'frames' && rest.length === 1) return { kind: 'frames', ...at };
  if (instance !== undefined && p[i] === 'bulkdata' && rest.length > 0) return { kind: 'bulkdata', ...at };
  return undefined;
}

async function visibleStudies(caller: Caller, studies: StudyEntry[]): Promise<StudyEntry[]> {
  if (caller.access.allowsAll) return studies;
  await caller.access.decide(studies.map((s) => s.facts.studyInstanceUid));
  return studies.filter((s) => caller.access.verdict(s.facts.studyInstanceUid) === true);
}

/** `1,2,3` of a frames path: whole numbers from 1, at most MAX_FRAMES_PER_REQUEST. */
function frameNumbers(list: string): number[] {
  const parts = list.split(',').map((s) => s.trim());
  if (parts.length > MAX_FRAMES_PER_REQUEST) throw new HttpError(400, `at most ${MAX_FRAMES_PER_REQUEST} frames a request`);
  return parts.map((s) => {
    if (!/^\d{1,9}$/.test(s) || Number(s) < 1) throw new HttpError(400, `${printable(s)} is not a frame number (1, 2, …)`);
    return Number(s);
  });
}

function json(res: ServerResponse, body: unknown): void {
  jsonText(res, JSON.stringify(body));
}

function jsonText(res: ServerResponse, text: string): void {
  res.writeHead(200, { 'content-type': `${JSON_TYPE}; charset=utf-8`, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function refuse(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${message}\n`);
}
