// Who may connect and which studies they may see. Open access only on a loopback address; any
// other address needs a policy: a static bearer token, signed tokens (JWT, HS256 or RS256 with
// `jose`) naming the studies their holder may open, and/or an embedder's `authorize` hook. An
// Origin allowlist guards browsers against other sites' pages.
import { createSecretKey, timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { JWTPayload, createRemoteJWKSet, importSPKI } from 'jose';
import { CodedError } from '../shared/coded-error.js';

type VerifyKey = Awaited<ReturnType<typeof importSPKI>> | Uint8Array | ReturnType<typeof createSecretKey>;
/** jose is loaded only by a server that checks signed tokens. */
const loadJose = () => import('jose');

/** The connection asking: what an `authorize` hook may look at. */
export interface AccessRequest {
  /** The client's address: the TCP peer's, or the one a trusted proxy names (`trustProxy`). */
  remoteAddress: string;
  origin: string | undefined;
  headers: IncomingHttpHeaders;
  /** The token's claims, when a JWT was given. */
  claims: JWTPayload | undefined;
}

export interface AccessPolicy {
  /** A static bearer token: anyone holding it sees every study. */
  token?: string;
  /** Signed tokens. Their `studies` claim (an array of Study Instance UIDs, or "*") says what the holder may open; `exp` when it stops. */
  jwt?: {
    /** HS256 shared secret. */
    secret?: string;
    /** RS256 public key (PEM, SPKI). */
    publicKey?: string;
    /** A JWKS URL to fetch RS256 keys from. */
    jwksUrl?: string;
    issuer?: string;
    audience?: string;
    /** The claim listing the studies (default "studies"). */
    studiesClaim?: string;
  };
  /** Allowed Origin header values (browsers); absent: any. Connections without an Origin (not browsers) are not checked. */
  origins?: string[];
  /** The embedder's say on every study a connection touches (after the token's own limits). */
  authorize?: (request: AccessRequest, studyInstanceUid: string) => boolean | Promise<boolean>;
}

/** What a connection was granted. */
export interface Grant {
  /** Every study, or these. */
  studies: 'all' | Set<string>;
  /** Unix ms; undefined: no expiry. */
  expiresAt: number | undefined;
  claims: JWTPayload | undefined;
}

/** A refused policy or token: NO_ACCESS_POLICY at start, INVALID_TOKEN at a handshake (sent as UNAUTHENTICATED). */
export class AccessError extends CodedError<'NO_ACCESS_POLICY' | 'INVALID_TOKEN'> {}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\./.test(host);
}

const OPEN: Grant = { studies: 'all', expiresAt: undefined, claims: undefined };

export class AccessControl {
  private policy!: AccessPolicy;
  private isOpen!: boolean;
  private jwtKey!: Promise<VerifyKey | ReturnType<typeof createRemoteJWKSet> | undefined>;
  private tokenDigest: Buffer | undefined;

  constructor(policy: AccessPolicy, private readonly host: string) {
    const jwtKey = this.check(policy);
    jwtKey.catch(() => undefined); // a key that does not import refuses every signed token, reported then
    this.install(policy, jwtKey);
  }

  /** True when no token is needed (loopback, no policy). */
  get open(): boolean { return this.isOpen; }

  /**
   * Takes a new policy (a token or keys rotated, on SIGHUP): checked first, its key imported, and
   * only then put in force, by the function it resolves with (so that a reload with a bad key, or
   * one whose certificate fails next, changes nothing). New connections and tokens are checked
   * against it; connections let in before keep their grant until it expires.
   */
  async prepare(policy: AccessPolicy): Promise<() => void> {
    const jwtKey = this.check(policy);
    await jwtKey;
    return () => this.install(policy, jwtKey);
  }

  /** Throws NO_ACCESS_POLICY when the policy leaves a public address open; the policy's JWT key, being imported. */
  private check(policy: AccessPolicy): Promise<VerifyKey | ReturnType<typeof createRemoteJWKSet> | undefined> {
    const hasPolicy = Boolean(policy.token || policy.jwt?.secret || policy.jwt?.publicKey || policy.jwt?.jwksUrl || policy.authorize);
    if (!hasPolicy && !isLoopback(this.host)) {
      throw new AccessError('NO_ACCESS_POLICY', `refusing to listen on ${this.host} without an access policy: give a token (--token-file), JWT keys ` +
        '(--jwt-secret-file, --jwt-public-key, --jwks-url) or an authorize hook; open access is only for 127.0.0.1');
    }
    const jwt = policy.jwt;
    return (async () => {
      if (jwt?.secret) return createSecretKey(Buffer.from(jwt.secret, 'utf8'));
      if (jwt?.publicKey) return (await loadJose()).importSPKI(jwt.publicKey, 'RS256');
      if (jwt?.jwksUrl) return (await loadJose()).createRemoteJWKSet(new URL(jwt.jwksUrl));
      return undefined;
    })();
  }

  private install(policy: AccessPolicy, jwtKey: Promise<VerifyKey | ReturnType<typeof createRemoteJWKSet> | undefined>): void {
    this.policy = policy;
    this.isOpen = !policy.token && !policy.jwt?.secret && !policy.jwt?.publicKey && !policy.jwt?.jwksUrl;
    this.tokenDigest = policy.token ? digest(policy.token) : undefined;
    this.jwtKey = jwtKey;
  }

  /** Whether a browser page from `origin` may connect. */
  originAllowed(origin: string | undefined): boolean {
    if (!this.policy.origins || origin === undefined) return true;
    return this.policy.origins.includes(origin);
  }

  /** Checks a token (from Hello, Authenticate or an Authorization header). Throws AccessError with a reason. */
  async authenticate(token: string | undefined): Promise<Grant> {
    if (this.open) return OPEN;
    if (!token) throw new AccessError('INVALID_TOKEN', 'this server needs a token');
    if (this.tokenDigest && timingSafeEqual(digest(token), this.tokenDigest)) return OPEN;
    const key = await this.jwtKey;
    if (!key || token.split('.').length !== 3) throw new AccessError('INVALID_TOKEN', 'the token is not valid');
    try {
      const jwt = this.policy.jwt!;
      const options = { algorithms: jwt.secret ? ['HS256'] : ['RS256'], issuer: jwt.issuer, audience: jwt.audience };
      const { jwtVerify } = await loadJose();
      const { payload } = typeof key === 'function'
        ? await jwtVerify(token, key, options)
        : await jwtVerify(token, key, options);
      const claim = payload[jwt.studiesClaim ?? 'studies'];
      const studies: Grant['studies'] = claim === '*' ? 'all'
        : new Set(Array.isArray(claim) ? claim.filter((s): s is string => typeof s === 'string') : []);
      return { studies, expiresAt: payload.exp === undefined ? undefined : payload.exp * 1000, claims: payload };
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new AccessError('INVALID_TOKEN', code === 'ERR_JWT_EXPIRED' ? 'the token has expired' : 'the token is not valid');
    }
  }

  /** Whether the grant is still good now. */
  expired(grant: Grant, now = Date.now()): boolean {
    return grant.expiresAt !== undefined && now >= grant.expiresAt;
  }

  /** Whether this connection may see this study (its token's list, then the embedder's hook). */
  async allows(grant: Grant, request: Omit<AccessRequest, 'claims'>, studyInstanceUid: string): Promise<boolean> {
    if (grant.studies !== 'all' && !grant.studies.has(studyInstanceUid)) return false;
    if (!this.policy.authorize) return true;
    try {
      return await this.policy.authorize({ ...request, claims: grant.claims }, studyInstanceUid);
    } catch {
      return false; // a failing hook lets nothing through
    }
  }

  /** True when every study is allowed without asking (no per-study checks needed). */
  allowsAll(grant: Grant): boolean {
    return grant.studies === 'all' && !this.policy.authorize;
  }
}

function digest(token: string): Buffer {
  // Equal-length digests make the comparison constant-time whatever the token's length.
  return createHash('sha256').update(token).digest();
}

/** The bearer token of an Authorization header, if any. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? '');
  return m?.[1];
}
