/** Why a file was refused or could not be stored or read. */
export type MediaErrorCode =
  /** The base64 text does not decode. */
  | "invalid_base64"
  /** The file is larger than the limit of its kind. */
  | "too_large"
  /** The bytes are not a file of an accepted type, or not of the kind the sender said. */
  | "unsupported_type"
  /** No blob under that SHA-256. */
  | "not_found"
  /** The backend (PostgreSQL or NATS) did not answer; retrying may help. */
  | "unavailable";

/** The one error type of media/; `cause` holds the backend's own error, when there is one. */
export class MediaError extends Error {
  override readonly name = "MediaError";
  readonly code: MediaErrorCode;

  constructor(code: MediaErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
  }
}
