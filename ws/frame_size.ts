/** UTF-16 code units encoded per step when counting: 3 bytes each at most, so 48 KiB of scratch. */
const CHUNK_UNITS = 16 * 1024;

/**
 * Whether a client frame is over `maxFrameBytes`: a text frame by the UTF-8 bytes it took on
 * the wire, a binary one by its length.
 */
export function overFrameLimit(data: unknown, maxFrameBytes: number): boolean {
  if (data instanceof ArrayBuffer) return data.byteLength > maxFrameBytes;
  if (typeof data !== "string") return false;
  // each UTF-16 code unit is one to three UTF-8 bytes (a surrogate pair is two units, four
  // bytes), so only a frame between the two bounds needs counting
  if (data.length > maxFrameBytes) return true;
  if (data.length * 3 <= maxFrameBytes) return false;
  return utf8ByteLength(data, maxFrameBytes) > maxFrameBytes;
}

/**
 * The UTF-8 length of `text` (a lone surrogate counts as U+FFFD, three bytes), without a copy
 * of it: encoded a chunk at a time into a small scratch buffer. Counting stops once the total
 * is over `stopAbove`; the result is then only known to be over it.
 */
export function utf8ByteLength(text: string, stopAbove = Infinity): number {
  const encoder = new TextEncoder();
  const scratch = new Uint8Array(Math.min(text.length, CHUNK_UNITS) * 3);
  let bytes = 0;
  let offset = 0;
  while (offset < text.length && bytes <= stopAbove) {
    let end = Math.min(offset + CHUNK_UNITS, text.length);
    // a surrogate pair is never split between chunks, or each half would count as U+FFFD
    if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--;
    const { read, written } = encoder.encodeInto(text.substring(offset, end), scratch);
    bytes += written;
    offset += read;
  }
  return bytes;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}
