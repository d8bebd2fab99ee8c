import type { IngestOptions, MediaSource, StoredBlob } from "./ingest.ts";

export type { IngestOptions, MediaSource, StoredBlob } from "./ingest.ts";

/** Bytes `start` to `end` of a file, both included (as in HTTP `Range`). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where media bytes live, named by their SHA-256 so that a file sent twice is stored once.
 * It knows files, not chats: who sent what where is the chat store's business.
 * Errors are MediaError.
 */
export interface MediaStore {
  /**
   * Reads `source` once, checking its type and size (see `inspect`), and stores it unless a
   * blob with the same SHA-256 is already there; nothing is kept of a refused or broken file.
   * Errors: `unsupported_type`, `too_large`, `unavailable`; a failing source's own error.
   */
  put(source: MediaSource, options: IngestOptions): Promise<StoredBlob>;
  /**
   * The bytes of a blob, or of `range` of them, read as the stream is pulled (a slow reader
   * holds a chunk, not the file). Null when there is no such blob. `range` must lie within it.
   * Errors: `unavailable` (also from the stream).
   */
  open(sha256: string, range?: ByteRange): Promise<ReadableStream<Uint8Array> | null>;
  exists(sha256: string): Promise<boolean>;
  /**
   * Deletes a blob's bytes; nothing when there are none. Only for a blob no media row names,
   * while its catalogue row is locked (see db/media_retention.ts): bytes found stored are
   * reused by later uploads. Errors: `unavailable`.
   */
  delete(sha256: string): Promise<void>;
  /**
   * The SHA-256s of the complete files whose writing began before `before` (a backend that
   * knows only when a file was completed goes by that: later, so it lists fewer), and not before
   * `since` when given (a backend without an index by time may list those too), a
   * batch at a time, for the sweep of files no catalogue row names (media/unsent_media_sweep.ts).
   * Uploads under way are not files yet. The sweep's times are on the database's clock; a
   * backend whose times come from another clock (NATS: the server's) compares them as they are.
   * Errors: `unavailable`.
   */
  files(options: { since?: Date; before: Date }): AsyncIterable<string[]>;
  /** True while the backend answers. */
  check(signal?: AbortSignal): Promise<boolean>;
  /**
   * Releases what the store opened itself (not a connection it was given). Once `signal`
   * aborts, at once: what was still to be flushed is dropped.
   */
  close(signal?: AbortSignal): Promise<void>;
}
