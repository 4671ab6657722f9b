// dicomstream/client: connect to a dicomstream server, browse, and receive frames as stored.
import { InProcessDecodePool, type FrameDecodePool } from './decode-pool-api.js';

export {
  connect, DicomStreamClient, ConnectionError, type ConnectOptions, type ConnectionState, type FrameAddress, type ReconnectInfo, type ReconnectOptions,
  type RequestOptions, type GroupSettings,
} from './client.js';
export { FrameStream, type Frame, type FrameCallback, type RequestSummary } from './frame-stream.js';
export type { WebSocketLike, WebSocketConstructor } from './socket.js';
export {
  ProtocolError, ErrorCode, errorCodeName,
  type ImageAttributes, type SeriesManifest, type StudySummary, type SeriesSummary, type StudyList, type LookupTable,
  type FrameAttributes, type Welcome, type Limits, type SeriesUpdated,
} from '../shared/protocol.js';
export { transferSyntax, type TransferSyntax } from '../shared/transfer-syntax.js';
export {
  decodeFrame, DecodeError, Decoders, registerDecoder, hasDecoder, rescale, arrayTypeFor,
  type DecodedFrame, type DecodeOptions, type DecodeInstance, type PixelArray, type FrameDecoder, type DecoderLoader, type CodecOutput,
  type Rescale, type RescaledArray, type RescaledFrame, type RescaledPixels,
} from './decode/index.js';
export { renderRgba, initialWindow, isGrey, type RenderOptions, type RenderInstance, type Pixels } from './render/render-rgba.js';
export { greyFunction, windowFunction, modalityTransform, type Window, type GreyOptions } from './render/grey-lut.js';
export { FrameCanvas } from './render/frame-canvas.js';
export { SeriesLoader, outwardOrder, type StackFrame, type SeriesLoaderOptions } from './series-loader.js';

/**
 * Loads the codecs of these transfer syntaxes ahead of the first frame. In Node decoders run
 * in-process: there are no workers to start.
 */
export function prepareDecoders(transferSyntaxUids: string[] = [], workers?: number): void {
  void workers;
  new InProcessDecodePool().warm(transferSyntaxUids);
}

/** Stops the decode workers (browsers). In Node decoders run in-process: nothing to stop. */
export function closeDecoders(): void {}

export type { FrameDecodePool } from './decode-pool-api.js';

/** A decode pool of its own (browsers: up to `size` Web Workers); in Node it decodes in-process. */
export function createDecodePool(size?: number): FrameDecodePool {
  void size;
  return new InProcessDecodePool();
}
