// Who a connection is from. Behind a reverse proxy every TCP peer is the proxy, so the per-address
// limit would become a global one and the logs would name nobody: the proxies the operator lists
// (--trust-proxy) are taken at their word, each naming the hop before it in one header
// (--proxy-header), as nginx's real_ip module does with set_real_ip_from and real_ip_recursive.
// Nobody is trusted by default, and a header is never read from a peer that is not listed: a
// client could write any address there. Address matching is node:net's BlockList (IPv4, IPv6,
// CIDR ranges, and IPv4-mapped IPv6 addresses against IPv4 ranges).
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { CodedError } from '../shared/coded-error.js';

/** The headers a trusted proxy may name the client in. */
export const PROXY_HEADERS = ['x-forwarded-for', 'forwarded'] as const;
export type ProxyHeader = (typeof PROXY_HEADERS)[number];

/** The client's address of a request: the TCP peer's, or the one its trusted proxies name. */
export type ClientAddressOf = (request: IncomingMessage) => string;

/** Ranges named by a word, as Express's `trust proxy` (proxy-addr) names them. */
const NAMED_RANGES: Record<string, ReadonlyArray<readonly [string, number]>> = {
  loopback: [['127.0.0.0', 8], ['::1', 128]],
  linklocal: [['169.254.0.0', 16], ['fe80::', 10]],
  uniquelocal: [['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['fc00::', 7]],
};

/** `::ffff:10.0.0.1` → `10.0.0.1`: one client is one key, whether the server listens on IPv4 or IPv6. */
export function plainAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/** The peer's address, as is (no proxy trusted). */
export const peerAddress: ClientAddressOf = (request) => plainAddress(request.socket.remoteAddress ?? '');

/**
 * The client's address as `trusted` proxies tell it in `header`; without proxies, the peer's.
 * Throws BAD_OPTION naming an entry of `trusted` that is not an address, a range or a known word.
 */
export function clientAddressOf(trusted: string | undefined, header: string = 'x-forwarded-for'): ClientAddressOf {
  const proxies = trustedProxies(trusted ?? '');
  if (!proxies) return peerAddress;
  if (!(PROXY_HEADERS as readonly string[]).includes(header)) {
    throw new CodedError('BAD_OPTION', `proxy header must be one of ${PROXY_HEADERS.join(', ')}: ${header}`);
  }
  const hopsOf = header === 'forwarded' ? forwardedFor : forwardedForList;
  return (request) => clientAddress(peerAddress(request), () => hopsOf(request.headers[header]), (a) => trusts(proxies, a));
}

/**
 * Walks back from the peer through the hops its header lists (rightmost first): the first address
 * that is not a trusted proxy is the client (what is left of it was written by that client, or
 * by proxies it passed on the way, and may be anything). When every hop is trusted, the furthest.
 * A hop that is no address (`unknown`, an obfuscated `_name`) ends the walk at the proxy that
 * wrote it: it said it does not know.
 */
export function clientAddress(peer: string, hops: () => string[], trusted: (address: string) => boolean): string {
  if (!trusted(peer)) return peer;
  let address = peer;
  for (const hop of hops()) {
    if (isIP(hop) === 0) return address;
    address = plainAddress(hop);
    if (!trusted(address)) return address;
  }
  return address;
}

/** The proxies named by `spec` (comma-separated), or undefined when it names none. */
export function trustedProxies(spec: string): BlockList | undefined {
  const entries = spec.split(',').map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const named = NAMED_RANGES[entry.toLowerCase()];
    if (named) {
      for (const [network, prefix] of named) list.addSubnet(network, prefix, family(network));
      continue;
    }
    const [network = '', prefix, extra] = entry.split('/');
    const version = isIP(network);
    const bits = prefix === undefined ? (version === 6 ? 128 : 32) : Number(prefix);
    if (version === 0 || extra !== undefined || (prefix !== undefined && !/^\d+$/.test(prefix)) || !(bits >= 0 && bits <= (version === 6 ? 128 : 32))) {
      throw new CodedError('BAD_OPTION', `trusted proxy is not an address, a range (CIDR) nor one of ${Object.keys(NAMED_RANGES).join(', ')}: ${entry}`);
    }
    list.addSubnet(network, bits, family(network));
  }
  return list;
}

function trusts(proxies: BlockList, address: string): boolean {
  const version = isIP(address);
  return version !== 0 && proxies.check(address, version === 6 ? 'ipv6' : 'ipv4');
}

const family = (address: string) => (isIP(address) === 6 ? 'ipv6' : 'ipv4');

/** X-Forwarded-For's hops, rightmost (the nearest) first; several header lines come joined by ', '. */
export function forwardedForList(value: string | string[] | undefined): string[] {
  const text = Array.isArray(value) ? value.join(',') : value ?? '';
  return text.split(',').map((s) => s.trim()).filter(Boolean).reverse();
}

/**
 * RFC 7239 Forwarded's `for=` of each element, rightmost first, as bare addresses (`"[2001:db8::1]:4711"`
 * → `2001:db8::1`, `"192.0.2.1:80"` → `192.0.2.1`). An element without `for=` is `unknown`.
 */
export function forwardedFor(value: string | string[] | undefined): string[] {
  const text = Array.isArray(value) ? value.join(',') : value ?? '';
  const hops: string[] = [];
  for (const element of splitOutsideQuotes(text, ',')) {
    let node = 'unknown';
    for (const pair of splitOutsideQuotes(element, ';')) {
      const eq = pair.indexOf('=');
      if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      node = nodeAddress(pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'));
    }
    if (element.trim()) hops.push(node);
  }
  return hops.reverse();
}

/** A Forwarded node without its port: `[v6]:port`, `[v6]`, `v4:port`, or as it is. */
function nodeAddress(node: string): string {
  const v6 = /^\[([^\]]*)\](?::\d+)?$/.exec(node);
  if (v6) return v6[1]!;
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(node);
  return v4 ? v4[1]! : node;
}

/** Splits on `separator` where it is not inside a quoted string. */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === separator && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
