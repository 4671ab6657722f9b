// dicomstream/server: the server and its parts, for embedding and tools.
export { startServer, DEFAULT_LIMITS, DEFAULT_CONNECTION_LIMITS, SERVER_NAME, type ServerOptions, type RunningServer, type IndexSummary } from './server.js';
export { OPTIONS, DEFAULTS, type OptionRow, type TableOptions } from './options.js';
export { CodedError } from '../shared/coded-error.js';
export { ERRORS, type ErrorCodeName, type ErrorInfo } from '../shared/errors.js';
export { AccessError, type AccessPolicy, type AccessRequest, type Grant } from './access.js';
export { scanFolder, listFiles, type ScanResult, type SkippedFile, type ScanOptions } from './index/scan.js';
export { indexFile, indexBytes, type IndexedFile } from './index/index-file.js';
export { IndexError, type IndexErrorCode } from './index/index-error.js';
export { Catalogue, type DuplicateFile } from './index/catalogue.js';
export type { FrameLocation } from './index/frame-table.js';
export { createLogger, type Logger, type LogLevel } from './log.js';
