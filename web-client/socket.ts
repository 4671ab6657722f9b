// The little of a WebSocket the client uses: the browser's, or `ws` in Node.

export interface MessageEventLike { data: unknown }
export interface CloseEventLike { code: number; reason: string }

export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: MessageEventLike) => void): void;
  addEventListener(type: 'close', listener: (event: CloseEventLike) => void): void;
  addEventListener(type: 'error', listener: (event: unknown) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Message data as bytes, without copying where the socket gave bytes already. */
export function messageBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

/** A WebSocket upgrade the server answered with another HTTP status than 101. */
export interface RefusedUpgrade {
  status: number;
  statusText: string;
}

/** Node's `ws` emits the HTTP response of a refused upgrade; nothing else here has `on`. */
interface UpgradeResponseEvents {
  on(event: 'unexpected-response', listener: (request: unknown, response: { statusCode?: number; statusMessage?: string }) => void): unknown;
}

/**
 * Calls `refused` with the status when the server refuses the upgrade (429, 503, 403, 401…), then
 * ends the attempt (the socket's 'error' and 'close' follow). Only where the socket tells it:
 * Node's `ws` does; a browser's WebSocket does not (the page learns nothing of a failed handshake,
 * by design of the standard), and there this does nothing.
 */
export function onUpgradeRefused(socket: WebSocketLike, refused: (upgrade: RefusedUpgrade) => void): void {
  const events = socket as WebSocketLike & Partial<UpgradeResponseEvents>;
  if (typeof events.on !== 'function') return;
  (events as UpgradeResponseEvents).on('unexpected-response', (_request, response) => {
    refused({ status: response.statusCode ?? 0, statusText: response.statusMessage ?? '' });
    // With a listener, ws leaves the attempt open: closing it while connecting aborts it.
    socket.close();
  });
}
