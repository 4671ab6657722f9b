import type { ErrorCodeName } from './errors.js';

/**
 * An Error with a stable `code` to branch on; every error class of the project is one, and its
 * code is one of the error table's (shared/errors.ts), so a code cannot be made up in passing.
 */
export class CodedError<Code extends ErrorCodeName = ErrorCodeName> extends Error {
  readonly code: Code;
  constructor(code: Code, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}
