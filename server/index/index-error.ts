import { CodedError } from '../../shared/coded-error.js';

/** Why a file was not indexed. The code is stable (reports, tests); the message says what was seen. */
export type IndexErrorCode = 'NOT_DICOM' | 'CORRUPT' | 'NO_PIXEL_DATA' | 'NO_UID' | 'NOT_AN_IMAGE' | 'TRUNCATED' | 'UNSUPPORTED' | 'UNREADABLE' | 'GZIP' | 'OUTSIDE_ROOT'
  // Left out by the folder walk (never opened): see statFiles.
  | 'NOT_A_FILE' | 'DANGLING_LINK' | 'LINK_LOOP';

export class IndexError extends CodedError<IndexErrorCode> {}
