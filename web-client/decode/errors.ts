// The one error type the decoders throw, with a stable code a caller can branch on (show a
// placeholder for an unsupported syntax, report a corrupt frame, fix its attributes).

import { CodedError } from '../../shared/coded-error.js';

export type DecodeErrorCode = 'UNSUPPORTED_TRANSFER_SYNTAX' | 'CORRUPT_FRAME' | 'BAD_ATTRIBUTES';

export type DecodePoolErrorCode = 'WORKER_FAILED' | 'POOL_TERMINATED';

export class DecodeError extends CodedError<DecodeErrorCode | DecodePoolErrorCode> {}
