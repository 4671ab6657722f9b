// A DICOMweb request refused with an HTTP status and a message for the caller (plain text).
export class HttpError extends Error {
  constructor(readonly status: 400 | 401 | 403 | 404 | 405 | 406 | 503, message: string) {
    super(message);
    this.name = 'HttpError';
  }
}
