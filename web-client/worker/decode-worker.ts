// The Web Worker that decodes frames off the main thread. Frame bytes arrive transferred or
// copied; the decoded pixels go back transferred (no copy).
import { decodeFrame } from '../decode/decode-frame.js';
import type { DecodeRequest, DecodeResponse } from './messages.js';

interface WorkerScope {
  onmessage: ((event: { data: DecodeRequest }) => void) | null;
  postMessage(message: DecodeResponse, transfer?: Transferable[]): void;
}
const scope = globalThis as unknown as WorkerScope;

scope.onmessage = (event) => {
  const { id, bytes, instance, options } = event.data;
  decodeFrame(bytes, instance, options).then(
    ({ pixels, colourSpace }) => scope.postMessage(colourSpace ? { id, pixels, colourSpace } : { id, pixels }, [pixels.buffer as ArrayBuffer]),
    (error: unknown) => {
      const e = error as { message?: string; code?: string };
      scope.postMessage({ id, error: { message: e.message ?? String(error), code: e.code ?? 'DECODE_FAILED' } });
    },
  );
};
