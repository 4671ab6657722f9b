// dicomstream/client: connect to a dicomstream server, browse, and receive frames as stored.
export { connect, DicomStreamClient, ConnectionError, type ConnectOptions, type FrameAddress, type RequestOptions } from './client.js';
export { FrameStream, type Frame, type RequestSummary } from './frame-stream.js';
export type { WebSocketLike, WebSocketConstructor } from './socket.js';
export {
  ProtocolError, ErrorCode, errorCodeName,
  type ImageAttributes, type SeriesManifest, type StudySummary, type SeriesSummary, type StudyList, type LookupTable,
  type FrameAttributes, type Welcome, type Limits,
} from '../shared/protocol.js';
export { transferSyntax, type TransferSyntax } from '../shared/transfer-syntax.js';
