// The Web Worker that decodes frames off the main thread. Frame bytes arrive transferred or
// copied; the decoded pixels go back transferred (no copy).
import { DecodeError, decodeFrame } from '../decode/decode-frame.js';
import { defaultDecoders } from '../decode/decoders.js';
import type { DecodeRequest, DecodeResponse, PrepareRequest } from './messages.js';

interface WorkerScope {
  onmessage: ((event: { data: DecodeRequest | PrepareRequest }) => void) | null;
  postMessage(message: DecodeResponse, transfer?: Transferable[]): void;
}
const scope = globalThis as unknown as WorkerScope;

scope.onmessage = (event) => {
  if ('prepare' in event.data) {
    // A codec that fails to load here fails again, with its error, at the first frame that needs it.
    for (const uid of event.data.prepare) defaultDecoders.load(uid)?.catch(() => undefined);
    return;
  }
  const { id, bytes, instance, options } = event.data;
  const rescale = options?.rescale;
  const answer: Promise<DecodeResponse> = rescale
    // The bytes came as a copy or transferred: this worker's to overwrite.
    ? decodeFrame(bytes, instance, { ...options, rescale, consume: true }).then(({ pixels, min, max, scaled }) => ({ id, pixels, rescaled: { min, max, scaled } }))
    : decodeFrame(bytes, instance, { ...options, consume: true }).then(({ pixels, colourSpace }) => (colourSpace ? { id, pixels, colourSpace } : { id, pixels }));
  answer.then(
    (response) => scope.postMessage(response, [response.pixels!.buffer as ArrayBuffer]),
    (error: unknown) => {
      // Decoders throw DecodeError; anything else here is a codec module that failed to load.
      const code = error instanceof DecodeError ? error.code : 'WORKER_FAILED';
      scope.postMessage({ id, error: { message: error instanceof Error ? error.message : String(error), code } });
    },
  );
};
