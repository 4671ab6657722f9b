// Every tunable of the server, once: its CLI flag, its API name (the flag camel-cased, in the same
// unit), its default and what it means. cli.ts builds its flags from this table, startServer reads
// its defaults from it, and the README's options table is generated from it (test/options.test.ts
// checks that they agree).
import { cpus } from 'node:os';
import { CodedError } from '../shared/coded-error.js';
import { PROXY_HEADERS } from './client-address.js';

/** How a value is written on the command line, and its unit in the API. */
export type OptionKind = 'integer' | 'bytes' | 'seconds' | 'string' | 'boolean' | 'choice';

export interface OptionRow {
  /** The long flag without its argument, e.g. `--chunk-size` (`--no-watch` for a default-on switch). */
  flag: string;
  /** A short flag, e.g. `-p`. */
  short?: string;
  /** The argument's name in `--help`, e.g. `bytes`. */
  argument?: string;
  kind: OptionKind;
  /** Smallest value accepted (integer, bytes, seconds). */
  min?: number;
  /** Largest value accepted (integer). */
  max?: number;
  choices?: readonly string[];
  default?: number | string | boolean;
  /** How the default reads in the docs, when not the value itself. */
  defaultText?: string;
  meaning: string;
  /** What happens past a limit. */
  past?: string;
  /** The commands that take it. */
  commands: ReadonlyArray<'serve' | 'index' | 'scan'>;
  /** Only on the command line (its value reaches the API in another shape, named here). */
  cliOnly?: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
/** Worker threads parsing files: one per core. */
export const DEFAULT_PARSE_WORKERS = Math.max(1, cpus().length);

const serve = ['serve'] as const;
const both = ['serve', 'index'] as const;
/** The options of where the index is and what the walk takes in: `scan` reports what `serve` would serve with them. */
const all = ['serve', 'index', 'scan'] as const;

export const OPTIONS = [
  { flag: '--port', short: '-p', argument: 'n', kind: 'integer', min: 0, max: 65535, default: 8080, meaning: 'port to listen on (0: any free port)', commands: serve },
  { flag: '--host', short: '-H', argument: 'addr', kind: 'string', default: '127.0.0.1', meaning: 'address to listen on; any but loopback needs an access policy', commands: serve },
  { flag: '--chunk-size', argument: 'bytes', kind: 'bytes', min: 1024, default: 1 * MiB, meaning: 'largest frame chunk in one message (a frame up to it goes whole, as one message)', commands: serve },
  { flag: '--max-buffered', argument: 'bytes', kind: 'bytes', min: 1, default: 1 * MiB, meaning: 'unsent bytes held per connection at most', past: 'nothing more is read or sent for it until it drains; a client that sends and never reads is closed (1008)', commands: serve },
  { flag: '--max-open-files', argument: 'n', kind: 'integer', min: 1, default: 512, meaning: 'file handles kept open', past: 'idle handles closed', commands: serve },
  { flag: '--frame-cache', argument: 'bytes', kind: 'bytes', min: 1, default: 64 * MiB, meaning: 'frames kept in memory, shared by all clients and read ahead into', past: 'least recently used frames evicted', commands: serve },
  { flag: '--readahead', argument: 'n', kind: 'integer', min: 0, default: 4, meaning: 'frames read ahead for each frame group, and instances of a DICOMweb stack fetched in order', commands: serve },
  { flag: '--read-concurrency', argument: 'n', kind: 'integer', min: 1, default: 4, meaning: 'disk reads at once, over all connections', commands: serve },
  { flag: '--index-dir', argument: 'dir', kind: 'string', defaultText: '<dir>/.dicomstream', meaning: 'where the parser index is saved: a folder, or `s3://bucket/prefix` (an index in a bucket, shared by replicas on other machines); `scan` only reads it (a folder), for the files unchanged since, and leaves it out of the walk', commands: all },
  { flag: '--read-only-index', kind: 'boolean', default: false, meaning: 'serve the saved index in --index-dir as it is, never writing it, and follow its new versions (a replica sharing the index that `dicomstream index` or one writing server keeps); the folder is not scanned', past: 'refused without a saved index (NO_SAVED_INDEX); without it, a second writer of one index is refused (INDEX_LOCKED)', commands: serve },
  { flag: '--s3-endpoint', argument: 'url', kind: 'string', meaning: 'serve s3://bucket/prefix from this S3-compatible store (Ceph RGW, MinIO; path-style) instead of AWS; keys, region and profile from the usual AWS_* environment', commands: both },
  { flag: '--s3-timeout', argument: 'seconds', kind: 'seconds', min: 0.1, default: 10, meaning: 'a request to the store that gets no byte for this long is abandoned and tried again (a hung store does not hold reads for ever)', past: 'after 4 tries the frame gets FRAME_UNREADABLE', commands: both },
  { flag: '--index-cache', argument: 'bytes', kind: 'bytes', min: 1, default: 64 * MiB, meaning: 'opened series\' index entries kept in memory', past: 'least recently used series evicted', commands: serve },
  { flag: '--parse-workers', argument: 'n', kind: 'integer', min: 0, default: DEFAULT_PARSE_WORKERS, defaultText: 'one per core', meaning: 'worker threads parsing files (0: the main thread)', commands: all },
  { flag: '--no-watch', kind: 'boolean', default: true, meaning: 'do not pick up files added, replaced or deleted while serving', commands: serve },
  { flag: '--rescan-interval', argument: 'seconds', kind: 'seconds', min: 0, default: 60, meaning: 'also rescan the folder this often, where watching is unreliable (0: never)', commands: serve },
  { flag: '--max-connections', argument: 'n', kind: 'integer', min: 1, default: 1024, meaning: 'open connections at most', past: 'upgrade refused, HTTP 503', commands: serve },
  { flag: '--max-connections-per-address', argument: 'n', kind: 'integer', min: 1, default: 256, meaning: 'open connections at most from one client address (the peer\'s, or the one a --trust-proxy names)', past: 'upgrade refused, HTTP 429', commands: serve },
  { flag: '--trust-proxy', argument: 'addresses', kind: 'string', default: '', defaultText: 'none', meaning: 'reverse proxies trusted to name the client in --proxy-header: comma-separated addresses, CIDR ranges (IPv4, IPv6) or `loopback`, `linklocal`, `uniquelocal`; the client\'s address then counts for the per-address limit, the logs and the authorize hook', past: 'a peer not listed is the client, whatever its headers say', commands: serve },
  { flag: '--proxy-header', argument: 'header', kind: 'choice', choices: PROXY_HEADERS, default: 'x-forwarded-for', meaning: 'the header --trust-proxy peers name the client in: X-Forwarded-For, or RFC 7239 Forwarded (for=); only this one is read (the other may come from the client)', commands: serve },
  { flag: '--handshake-timeout', argument: 'seconds', kind: 'seconds', min: 0, default: 10, meaning: 'a WebSocket connection must complete the protocol handshake (Hello answered by Welcome) within this long (0: no limit)', past: 'closed with 1008 (logged): its place under the connection limits is free again', commands: serve },
  { flag: '--header-timeout', argument: 'seconds', kind: 'seconds', min: 0.1, default: 10, meaning: 'a connection must send its whole HTTP request (an upgrade\'s too, TLS handshake included) within this long; on a port of its own only (README: embedding)', past: 'HTTP 408, connection closed (logged)', commands: serve },
  { flag: '--max-pending-connections', argument: 'n', kind: 'integer', min: 1, default: 1024, meaning: 'connections open at most without a request (opened and silent, sending their headers, idle between two requests); on a port of its own only', past: 'the one waiting longest is closed (logged)', commands: serve },
  { flag: '--max-message-size', argument: 'bytes', kind: 'bytes', min: 1024, default: 4 * MiB, meaning: 'largest client message', past: 'connection closed, code 1009', commands: serve },
  { flag: '--rate-limit', argument: 'n', kind: 'integer', min: 0, default: 1000, meaning: 'client messages a second per connection, bursts of twice that (0: no limit)', past: '`RATE_LIMITED` for that message; the connection stays', commands: serve },
  { flag: '--max-open-requests', argument: 'n', kind: 'integer', min: 1, default: 1024, meaning: 'frame requests open at once per connection', past: '`TOO_MANY_REQUESTS`', commands: serve },
  { flag: '--max-frames-per-request', argument: 'n', kind: 'integer', min: 1, default: 100_000, meaning: 'frames in one request at most', past: '`TOO_MANY_REQUESTS`', commands: serve },
  { flag: '--max-page-size', argument: 'n', kind: 'integer', min: 1, default: 500, meaning: 'studies in one page of a study list at most', past: 'the page is cut there (`next_offset` says where to go on)', commands: serve },
  { flag: '--max-queued-frames', argument: 'n', kind: 'integer', min: 1, default: 100_000, meaning: 'frames queued at most per connection, over all its open requests', past: '`TOO_MANY_REQUESTS`', commands: serve },
  { flag: '--max-queued-frames-total', argument: 'n', kind: 'integer', min: 1, default: 1_000_000, meaning: 'frames queued at most over all connections (about 0.5 KB of memory each)', past: '`TOO_MANY_REQUESTS`', commands: serve },
  { flag: '--heartbeat', argument: 'seconds', kind: 'seconds', min: 0, default: 30, meaning: 'ping every connection this often (0: never)', past: 'a peer that did not answer the last ping is cut', commands: serve },
  { flag: '--shutdown-timeout', argument: 'seconds', kind: 'seconds', min: 0, default: 10, meaning: 'on close (SIGTERM/SIGINT), let frames in flight finish this long', past: 'frames still in flight are cancelled', commands: serve },
  { flag: '--no-http-stream', kind: 'boolean', default: true, meaning: 'do not offer browsers the HTTP stream (their WebSocket receives several times slower): every message then goes over the WebSocket', commands: serve },
  { flag: '--no-dicomweb', kind: 'boolean', default: true, meaning: 'do not serve DICOMweb (QIDO-RS, WADO-RS)', commands: serve },
  { flag: '--dicomweb-path', argument: 'path', kind: 'string', default: '/dicomweb', meaning: 'where DICOMweb is served (under the server\'s own path when mounted)', commands: serve },
  { flag: '--follow-symlinks', kind: 'boolean', default: false, meaning: 'also serve files through symbolic links that lead outside the folder', commands: all },
  { flag: '--log-level', argument: 'level', kind: 'choice', choices: LOG_LEVELS, default: 'info', meaning: 'what is logged (JSON lines on stderr)', commands: serve, cliOnly: '`log: createLogger(level)`' },
  { flag: '--token-file', argument: 'file', kind: 'string', defaultText: '$DICOMSTREAM_TOKEN', meaning: 'access: a static bearer token, read from this file', commands: serve, cliOnly: '`access.token`' },
  { flag: '--jwt-secret-file', argument: 'file', kind: 'string', defaultText: '$DICOMSTREAM_JWT_SECRET', meaning: 'access: HS256 secret of signed tokens, read from this file', commands: serve, cliOnly: '`access.jwt.secret`' },
  { flag: '--jwt-public-key', argument: 'file', kind: 'string', meaning: 'access: RS256 public key (PEM) of signed tokens', commands: serve, cliOnly: '`access.jwt.publicKey` (the PEM)' },
  { flag: '--jwks-url', argument: 'url', kind: 'string', meaning: 'access: fetch RS256 keys from this JWKS URL', commands: serve, cliOnly: '`access.jwt.jwksUrl`' },
  { flag: '--jwt-issuer', argument: 'iss', kind: 'string', meaning: 'access: signed tokens must have this issuer', commands: serve, cliOnly: '`access.jwt.issuer`' },
  { flag: '--jwt-audience', argument: 'aud', kind: 'string', meaning: 'access: signed tokens must have this audience', commands: serve, cliOnly: '`access.jwt.audience`' },
  { flag: '--allow-origin', argument: 'origin...', kind: 'string', meaning: 'browser pages allowed to connect (Origin header), e.g. https://viewer.example.org', past: 'upgrade refused, HTTP 403', commands: serve, cliOnly: '`access.origins`' },
  { flag: '--tls-cert', argument: 'file', kind: 'string', meaning: 'serve https:// and wss:// with this certificate (PEM)', commands: serve, cliOnly: '`tls.cert` (the PEM)' },
  { flag: '--tls-key', argument: 'file', kind: 'string', meaning: 'the certificate\'s private key (PEM)', commands: serve, cliOnly: '`tls.key` (the PEM)' },
] as const satisfies readonly OptionRow[];

type Row = (typeof OPTIONS)[number];

/** `--max-open-files` → `maxOpenFiles`; `--no-watch` → `watch`. */
export function apiName(flag: string): string {
  return flag.replace(/^--(no-)?/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

type Camel<S extends string> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;
type ApiNameOf<F extends string> = F extends `--no-${infer N}` ? Camel<N> : F extends `--${infer N}` ? Camel<N> : never;
type ValueOf<R extends Row> = R['kind'] extends 'boolean' ? boolean : R['kind'] extends 'string' | 'choice' ? string : number;

/** The options that have an API name: the flag camel-cased, in the same unit. */
export type TableOptions = {
  [R in Row as R extends { cliOnly: string } ? never : ApiNameOf<R['flag']>]?: ValueOf<R>;
};

/** Every API-named option that has a default, with it. */
export type ResolvedOptions = Required<Omit<TableOptions, 'indexDir'>>;

/** The table's defaults, by API name. */
export const DEFAULTS = Object.fromEntries(
  OPTIONS.filter((r: OptionRow) => !r.cliOnly && r.default !== undefined).map((r: OptionRow) => [apiName(r.flag), r.default]),
) as ResolvedOptions;

/**
 * Throws BAD_OPTION for a number outside its row's bounds: the command line checks them as it
 * parses; the API is checked here (a 0 where 1 is the least can stall a loop).
 */
export function checkBounds(options: object): void {
  const given = options as Record<string, unknown>;
  for (const r of OPTIONS as readonly OptionRow[]) {
    if (r.cliOnly || (r.kind !== 'integer' && r.kind !== 'bytes' && r.kind !== 'seconds')) continue;
    const v = given[apiName(r.flag)];
    if (v === undefined) continue;
    const min = r.min ?? 0;
    const max = r.max ?? Number.MAX_SAFE_INTEGER;
    const whole = r.kind !== 'seconds';
    if (typeof v !== 'number' || !Number.isFinite(v) || (whole && !Number.isInteger(v)) || v < min || v > max) {
      throw new CodedError('BAD_OPTION', `${apiName(r.flag)} (${r.flag}) must be a ${whole ? 'whole ' : ''}number ` +
        `${max < Number.MAX_SAFE_INTEGER ? `from ${min} to ${max}` : `of at least ${min}`}, not ${String(v)}`);
    }
  }
}

/** Options as given, each missing one replaced by its default. */
export function withDefaults(options: Omit<TableOptions, 'indexDir'>): ResolvedOptions {
  const out: Record<string, unknown> = { ...DEFAULTS };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) out[k] = v;
  return out as ResolvedOptions;
}

/** One row of the README's options table per option. */
export function optionsTableMarkdown(): string {
  const lines = ['| option | API (`startServer`) | default | what it is | past it |', '|---|---|---|---|---|'];
  for (const r of OPTIONS as readonly OptionRow[]) {
    const flag = `\`${r.short ? `${r.short}, ` : ''}${r.flag}${r.argument ? ` <${r.argument}>` : ''}\``;
    const api = r.cliOnly ?? `\`${apiName(r.flag)}\``;
    const also = r.commands.filter((c) => c !== 'serve').map((c) => `\`${c}\``).join(', ');
    lines.push(`| ${flag} | ${api} | ${defaultText(r)} | ${r.meaning}${also ? ` (also ${also})` : ''} | ${r.past ?? ''} |`);
  }
  return lines.join('\n');
}

/** The default as the docs and `--help` say it (`256 KiB`, `30 s`, `one per core`). */
export function defaultText(r: OptionRow): string {
  if (r.defaultText) return r.defaultText;
  if (r.default === undefined) return '';
  if (r.kind === 'bytes' && typeof r.default === 'number') {
    const n = r.default;
    return n % MiB === 0 ? `${n / MiB} MiB` : n % KiB === 0 ? `${n / KiB} KiB` : `${n}`;
  }
  if (r.kind === 'boolean') return r.flag.startsWith('--no-') ? 'on' : 'off';
  if (r.kind === 'seconds') return `${r.default} s`;
  if (typeof r.default === 'number' && r.default >= 10_000) return r.default.toLocaleString('en-US').replace(/,/g, ' ');
  return `${r.default}`;
}
