// Every error code that crosses a public boundary (the wire, the client API, the server API, the
// CLI), once, with what it means and what to do about it. CodedError's code is one of these; the
// README's error table is generated from this one (test/errors.test.ts checks that they agree and
// that the wire codes are proto's ErrorCode names).

/** Where a code is met. */
export type ErrorSurface = 'wire' | 'client' | 'decode' | 'server' | 'index' | 'files';

export interface ErrorInfo {
  surface: ErrorSurface;
  /** What happened. */
  meaning: string;
  /** What the user (viewer, embedder, operator) should do. */
  action: string;
}

export const ERRORS = {
  // The wire: `Error.code` (proto ErrorCode), a `ProtocolError` on the client with this code.
  MALFORMED_MESSAGE: { surface: 'wire', meaning: 'a message that is not a binary ClientMessage, has no body, or names request/group id 0; a request naming a UID over 256 characters or over 100 missing frames (refused whole)', action: 'a client bug: fix the request; the connection goes on' },
  UNSUPPORTED_VERSION: { surface: 'wire', meaning: 'Hello names a protocol version the server does not speak (then close 1002)', action: 'use a client of the server\'s version' },
  HANDSHAKE_REQUIRED: { surface: 'wire', meaning: 'a request before Hello', action: 'send Hello first (connect() does)' },
  UNKNOWN_SERIES: { surface: 'wire', meaning: 'no such series, or one the token may not see', action: 'list studies again; check the token\'s studies' },
  UNKNOWN_INSTANCE: { surface: 'wire', meaning: 'no such instance (or not visible); its file may have been deleted (the message says so)', action: 'reopen the series (SeriesUpdated tells when it changed)' },
  FRAME_OUT_OF_RANGE: { surface: 'wire', meaning: 'frame number 0 or past the instance\'s frames', action: 'ask for 1 … numberOfFrames' },
  FRAME_UNREADABLE: { surface: 'wire', meaning: 'the file changed, vanished or is shorter than its index; never stale bytes', action: 'retry after the series is updated; operators: check the file' },
  DUPLICATE_REQUEST_ID: { surface: 'wire', meaning: 'a request id still open on the connection', action: 'a client bug: use a new id' },
  TOO_MANY_REQUESTS: { surface: 'wire', meaning: 'over the open requests, frames per request, or frames queued (per connection or in all)', action: 'wait for requests to finish or cancel some; raise the limits (options table)' },
  INTERNAL: { surface: 'wire', meaning: 'an unexpected failure on the server (logged there)', action: 'report it with the server log' },
  UNAUTHENTICATED: { surface: 'wire', meaning: 'no token, a wrong, forged or expired one (at Hello: then close 1008); an Authenticate refused', action: 'get a new token; client.authenticate(token) replaces an expired one in-band' },
  RATE_LIMITED: { surface: 'wire', meaning: 'more messages a second than --rate-limit allows; that message is refused', action: 'send fewer, larger requests; raise --rate-limit' },

  // The client library.
  CONNECT_FAILED: { surface: 'client', meaning: 'the WebSocket could not be opened, or the handshake failed; a refused upgrade\'s HTTP status is in `error.status` and the message (429 too many connections from this address, 503 full or shutting down, 403 Origin not allowed, 401), in Node only: browsers hide it', action: '429, 503: try again later (a reconnect does, with backoff); 403: check the Origin allowlist; otherwise check the URL, the server, TLS and the token' },
  CONNECTION_CLOSED: { surface: 'client', meaning: 'the connection closed while this was pending (close code in the message)', action: 'connect again and re-request what is still wanted' },
  HTTP_STREAM_UNAVAILABLE: { surface: 'client', meaning: 'the HTTP stream could not be opened (a proxy or an embedder that does not pass `GET …/http-stream` to dicomstream, an older server): the client goes on over the WebSocket (`client.httpStreamError`)', action: 'nothing; for a browser\'s full speed, route `<stream path>/http-stream` to dicomstream (README: reverse proxies)' },
  PROTOCOL_VIOLATION: { surface: 'client', meaning: 'the server sent something the protocol does not allow (a chunk past its frame\'s end, an HTTP stream message over its bound)', action: 'report it: client and server versions disagree' },
  NOT_A_DICOMSTREAM_IMAGE_ID: { surface: 'client', meaning: 'the Cornerstone loader was given an imageId it cannot read (not dicomstream:/studies/…/frames/{n})', action: 'make imageIds with imageIdsForSeries() or imageIdOf()' },
  LOAD_CANCELLED: { surface: 'client', meaning: 'Cornerstone cancelled the image load (cancelFn, decache, cancelLoadAll); the server stopped sending it', action: 'expected: ignore' },
  NOT_FOR_CORNERSTONE: { surface: 'client', meaning: 'a canvas asked of a dicomstream Cornerstone image (getCanvas)', action: 'render Cornerstone images with a viewport' },
  NO_CANVAS_CONTEXT: { surface: 'client', meaning: 'the canvas gives no 2D context (already used for WebGL, or none in this environment)', action: 'give FrameCanvas a fresh canvas' },

  // Decoding (DecodeError).
  UNSUPPORTED_TRANSFER_SYNTAX: { surface: 'decode', meaning: 'no decoder for the frame\'s transfer syntax (video, JPEG XL, unknown)', action: 'show a placeholder; convert the file to a supported syntax' },
  CORRUPT_FRAME: { surface: 'decode', meaning: 'the codestream does not decode, or decodes to a size the attributes do not match', action: 'report the file; other frames are unaffected' },
  BAD_ATTRIBUTES: { surface: 'decode', meaning: 'the image attributes cannot describe a frame (rows, columns, bits)', action: 'fix the attributes passed to decodeFrame' },
  WORKER_FAILED: { surface: 'decode', meaning: 'a decode worker failed to start or died (a blocked script, a codec that does not load)', action: 'check that the worker and /assets/codecs/ are served; the next decode starts a new worker' },
  POOL_TERMINATED: { surface: 'decode', meaning: 'the decoders were closed while this decode was pending', action: 'expected after pool.close() or closeDecoders(): ignore' },

  // The server API and CLI start-up.
  NO_ACCESS_POLICY: { surface: 'server', meaning: 'listening on a non-loopback address without an access policy', action: 'give --token-file, --jwt-secret-file, --jwt-public-key or --jwks-url (or an authorize hook), or listen on 127.0.0.1' },
  NO_SUCH_FOLDER: { surface: 'server', meaning: 'the folder to serve does not exist', action: 'check the path' },
  NOT_A_FOLDER: { surface: 'server', meaning: 'the path to serve is a file (or something else), not a folder', action: 'give the folder that holds the files' },
  BAD_OPTION: { surface: 'server', meaning: 'an option out of range or inconsistent (the message names it)', action: 'see the options table' },
  SAMPLE_DIR_NOT_EMPTY: { surface: 'server', meaning: 'the built-in sample\'s folder holds other files', action: 'set DICOMSTREAM_SAMPLE_DIR to an empty or new folder' },
  INDEX_LOCKED: { surface: 'server', meaning: 'another process is writing this saved index (the message names it: pid, host, command, since when)', action: 'serve it with --read-only-index, give another --index-dir, or wait for the other writer to finish' },
  INDEX_NOT_WRITABLE: { surface: 'server', meaning: '`dicomstream index` cannot write in the index folder (a read-only medium, a full disk, no permission; the message says which)', action: 'give --index-dir a writable folder' },
  NO_SAVED_INDEX: { surface: 'server', meaning: '--read-only-index was given but the index folder holds no saved index', action: 'run dicomstream index DIR --index-dir INDEX first (or serve once without --read-only-index)' },
  INDEX_FILE_UNTRUSTED: { surface: 'server', meaning: 'a saved index file is partial, corrupt, of another version, or names a path outside the folder (logged; rebuilt)', action: 'nothing: it is rebuilt from the DICOM files; a read-only index folder needs --index-dir' },
  INVALID_TOKEN: { surface: 'server', meaning: 'a token that is missing, wrong, forged or expired (sent to the client as UNAUTHENTICATED)', action: 'get a new token' },

  // Files not indexed (dicomstream scan/index/serve report them, each with its reason).
  NOT_DICOM: { surface: 'index', meaning: 'not a DICOM file (no DICM prefix nor a data set at the start)', action: 'nothing: skipped' },
  CORRUPT: { surface: 'index', meaning: 'the data set does not parse', action: 'repair or remove the file' },
  NO_PIXEL_DATA: { surface: 'index', meaning: 'no Pixel Data (a structured report, a presentation state…)', action: 'nothing: only images are served' },
  NO_UID: { surface: 'index', meaning: 'an image without a SOP Instance UID: it cannot be addressed', action: 'repair the file' },
  NOT_AN_IMAGE: { surface: 'index', meaning: 'Pixel Data without Rows/Columns or with impossible attributes', action: 'repair the file' },
  TRUNCATED: { surface: 'index', meaning: 'pixel data shorter than its frames', action: 'copy the file again' },
  UNSUPPORTED: { surface: 'index', meaning: 'a layout not served (video syntaxes, fragments that cannot be assigned to frames, an inflate or frame-count bomb)', action: 'convert the file' },
  UNREADABLE: { surface: 'index', meaning: 'the file, or a folder, could not be read (permissions, I/O error): none of a folder\'s files are indexed', action: 'check its permissions (the server\'s user must read files and read and enter folders)' },
  GZIP: { surface: 'index', meaning: 'a gzip-wrapped file', action: 'gunzip it' },
  OUTSIDE_ROOT: { surface: 'index', meaning: 'a symbolic link leading outside the served folder', action: '--follow-symlinks to serve it' },
  NOT_A_FILE: { surface: 'index', meaning: 'a FIFO, socket or device (or a link to one): not a regular file; never opened', action: 'nothing: skipped; move it out of the folder to silence the report' },
  DANGLING_LINK: { surface: 'index', meaning: 'a symbolic link to nothing (its target does not exist)', action: 'fix or remove the link' },
  LINK_LOOP: { surface: 'index', meaning: 'a symbolic link loop: a link to itself (ELOOP), to a folder that contains it, or to a folder walked already through another link (its files are indexed once, by that path)', action: 'nothing: what it leads to is indexed once; remove the link to silence the report' },

  // Frame reads (sent to the client as FRAME_UNREADABLE, with this message).
  FILE_CHANGED: { surface: 'files', meaning: 'the file changed or was truncated since it was indexed', action: 'nothing: the refresh re-indexes it and clients get SeriesUpdated' },
  FILE_OUTSIDE_ROOT: { surface: 'files', meaning: 'the file now leads outside the served folder (a link changed after indexing)', action: '--follow-symlinks, or fix the link' },
  FILES_CLOSED: { surface: 'files', meaning: 'a read after the server closed', action: 'nothing: shutting down' },
} as const satisfies Record<string, ErrorInfo>;

/** Every stable error code. */
export type ErrorCodeName = keyof typeof ERRORS;

const SURFACES: Record<ErrorSurface, string> = {
  wire: 'wire (`Error.code`; a `ProtocolError` in the client)', client: 'client API', decode: 'decoding (`DecodeError`)',
  server: 'server API and CLI', index: 'file not indexed (`IndexError`, in reports)', files: 'frame read (sent as `FRAME_UNREADABLE`)',
};

/** The README's error table. */
export function errorsTableMarkdown(): string {
  const lines = ['| code | where | what happened | what to do |', '|---|---|---|---|'];
  for (const [code, info] of Object.entries(ERRORS) as Array<[string, ErrorInfo]>) {
    lines.push(`| \`${code}\` | ${SURFACES[info.surface]} | ${info.meaning} | ${info.action} |`);
  }
  return lines.join('\n');
}
