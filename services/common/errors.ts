/**
 * Base for errors Signet raises on purpose. `code` is a string-literal union per subclass so that
 * each edge (HTTP, job runner) maps codes exhaustively.
 */
export class AppError<C extends string> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export type RegistryErrorCode =
  | 'NOT_FOUND' // 404 for the requested object
  | 'UNAUTHORIZED' // 401/403 after the auth flow
  | 'TRANSIENT' // 5xx, 429, timeouts, connection errors: retry later
  | 'TOO_LARGE' // response larger than the configured cap
  | 'INVALID' // bad media type, unparsable body, digest mismatch, hostile content
  | 'REFUSED'; // the host is not one Signet may contact

/** An error from talking to a registry. Only `TRANSIENT` is worth retrying. */
export class RegistryError extends AppError<RegistryErrorCode> {
  readonly status: number | undefined;
  constructor(code: RegistryErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(code, message, options);
    this.status = options?.status;
  }
  get transient(): boolean {
    return this.code === 'TRANSIENT';
  }
}

export type WebhookErrorCode = 'UNAUTHORIZED' | 'FORBIDDEN' | 'UNSUPPORTED_MEDIA_TYPE' | 'MALFORMED' | 'UNAVAILABLE';

/** A webhook delivery Signet will not accept; mapped to an HTTP status at the ingest edge. */
export class WebhookError extends AppError<WebhookErrorCode> {}
