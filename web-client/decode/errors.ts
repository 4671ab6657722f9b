// The one error type the decoders throw, with a stable code a caller can branch on (show a
// placeholder for an unsupported syntax, report a corrupt frame, fix its attributes).

export type DecodeErrorCode = 'UNSUPPORTED_TRANSFER_SYNTAX' | 'CORRUPT_FRAME' | 'BAD_ATTRIBUTES';

export class DecodeError extends Error {
  readonly code: DecodeErrorCode;
  constructor(code: DecodeErrorCode, message: string) {
    super(message);
    this.name = 'DecodeError';
    this.code = code;
  }
}
