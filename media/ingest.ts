import { createHash } from "node:crypto";
import { DETECTION_BYTES, detectionLength, detectMedia } from "./detect.ts";
import { MediaError } from "./errors.ts";
import { largestLimit, type MediaKind, type MediaLimits } from "./kinds.ts";

/** A file on its way in: already in memory (decoded base64) or still arriving (an upload). */
export type MediaSource = Uint8Array | ReadableStream<Uint8Array>;

/** A stored file, named by its content. */
export interface StoredBlob {
  /** SHA-256 of the bytes, lower-case hex. */
  sha256: string;
  /** Detected from the magic bytes. */
  mime: string;
  size: number;
  kind: MediaKind;
}

export interface IngestOptions {
  /** The kind the sender says the file is; null: whatever its bytes are. */
  kind: MediaKind | null;
  limits: MediaLimits;
}

/** One pass over a file on its way to a store. */
export interface Inspection {
  /** The file in pieces of at most `chunkBytes`, released only once its type is known. */
  chunks: AsyncIterable<Uint8Array>;
  /** The blob, once `chunks` has been read to its end; throws before that. */
  result(): StoredBlob;
}

/**
 * Reads a file once, for a store to write as it goes: the first bytes (`detectionLength`, at
 * most MAX_DETECTION_BYTES) are held until the type is read from them (so a refused file
 * yields nothing), then the file is yielded in pieces of `chunkBytes` while it is counted and
 * hashed. A file is refused the moment it passes its kind's limit, so at most `chunkBytes`
 * beyond the limit is ever held.
 * The iterator throws MediaError `unsupported_type` or `too_large`; errors of the source pass
 * through. A store that wrote some pieces must remove them when it throws.
 */
export function inspect(
  source: MediaSource,
  options: IngestOptions & { chunkBytes: number },
): Inspection {
  const { kind, limits, chunkBytes } = options;
  let blob: StoredBlob | undefined;

  async function* chunks(): AsyncGenerator<Uint8Array> {
    const hash = createHash("sha256");
    const held = new Pieces();
    let size = 0;
    let detected: { kind: MediaKind; mime: string } | undefined;
    let limit = kind === null ? largestLimit(limits) : limits[kind];
    // how much is held before the type is read: more when ID3v2 tags come first
    let sample = DETECTION_BYTES;
    for await (const piece of piecesOf(source, chunkBytes)) {
      size += piece.length;
      if (size > limit) throw tooLarge(limit);
      hash.update(piece);
      held.push(piece);
      while (detected === undefined && held.size >= sample) {
        const head = held.peek(sample);
        sample = detectionLength(head);
        if (head.length < sample) continue;
        detected = await detectMedia(head, kind);
        limit = limits[detected.kind];
        if (size > limit) throw tooLarge(limit);
      }
      if (detected !== undefined) {
        while (held.size >= chunkBytes) yield held.take(chunkBytes);
      }
    }
    // a file shorter than the detection sample
    detected ??= await detectMedia(held.peek(sample), kind);
    if (size > limits[detected.kind]) throw tooLarge(limits[detected.kind]);
    while (held.size > 0) yield held.take(Math.min(chunkBytes, held.size));
    blob = { sha256: hash.digest("hex"), mime: detected.mime, size, kind: detected.kind };
  }

  return {
    chunks: chunks(),
    result() {
      if (!blob) throw new Error("inspect(): result() before the last chunk was read");
      return blob;
    },
  };
}

/** Where a stream's small pieces are copied to; see piecesOf. */
const COPY_BUFFER_BYTES = 64 * 1024;

/**
 * A byte array is cut into views (no copy); a stream's pieces come as they arrive, except that
 * a piece that is a small part of its buffer is copied into one of ours, next to the piece
 * before it: held as it is, it would keep all of its buffer alive (Deno hands out each piece
 * of a request body as a view of a 64 KiB buffer, so a client sending one byte at a time made
 * every byte held cost 64 KiB).
 */
async function* piecesOf(source: MediaSource, size: number): AsyncGenerator<Uint8Array> {
  if (source instanceof Uint8Array) {
    for (let start = 0; start < source.length; start += size) {
      yield source.subarray(start, start + size);
    }
    return;
  }
  const reader = source.getReader();
  let spare = new Uint8Array(0);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value.length * 2 >= value.buffer.byteLength) {
        yield value;
        continue;
      }
      for (let rest = value; rest.length > 0;) {
        if (spare.length === 0) spare = new Uint8Array(COPY_BUFFER_BYTES);
        const copied = Math.min(rest.length, spare.length);
        spare.set(rest.subarray(0, copied));
        yield spare.subarray(0, copied);
        spare = spare.subarray(copied);
        rest = rest.subarray(copied);
      }
    }
  } finally {
    // the file was refused, or a store gave up: stop the upload rather than drain it
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Pieces of bytes held in arrival order, taken out in pieces of another size. */
class Pieces {
  #list: Uint8Array[] = [];
  size = 0;

  /** Holds `piece`; one that continues the last held in its buffer extends it (one view). */
  push(piece: Uint8Array): void {
    this.size += piece.length;
    const last = this.#list.at(-1);
    if (last?.buffer === piece.buffer && last.byteOffset + last.length === piece.byteOffset) {
      this.#list[this.#list.length - 1] = new Uint8Array(
        last.buffer,
        last.byteOffset,
        last.length + piece.length,
      );
    } else {
      this.#list.push(piece);
    }
  }

  /** The first `count` bytes (or all, when fewer), left in place. */
  peek(count: number): Uint8Array {
    return this.#copy(Math.min(count, this.size), false);
  }

  /** Removes and returns the first `count` bytes; `count` must not exceed `size`. */
  take(count: number): Uint8Array {
    const first = this.#list[0];
    if (first && first.length === count) {
      this.#list.shift();
      this.size -= count;
      return first;
    }
    if (first && first.length > count) {
      this.#list[0] = first.subarray(count);
      this.size -= count;
      return first.subarray(0, count);
    }
    return this.#copy(count, true);
  }

  #copy(count: number, remove: boolean): Uint8Array {
    const out = new Uint8Array(count);
    let filled = 0;
    let index = 0;
    while (filled < count) {
      const piece = this.#list[index]!;
      const used = Math.min(piece.length, count - filled);
      out.set(piece.subarray(0, used), filled);
      filled += used;
      if (remove && used === piece.length) index++;
      else if (remove) this.#list[index] = piece.subarray(used);
      else index++;
    }
    if (remove) {
      this.#list.splice(0, index);
      this.size -= count;
    }
    return out;
  }
}

function tooLarge(limit: number): MediaError {
  return new MediaError("too_large", `the media is larger than ${limit} bytes`);
}
