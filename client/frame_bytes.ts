/**
 * The largest frame any server of the protocol reads: Deno's WebSocket message limit, above
 * MAX_FRAME_BYTES's highest setting. A larger one is dropped with the connection (1006, not
 * 1009), so that written, it would be written again on every connection.
 */
export const LARGEST_FRAME_BYTES = 64 * 1024 * 1024;

const encoder = new TextEncoder();

/** Any UTF-16 unit that is not ASCII. */
const NOT_ASCII = /[\u0080-\uffff]/;

/** The UTF-8 size of a frame; an ASCII one (media's base64, most text) needs no encoding. */
export function utf8Bytes(text: string): number {
  return NOT_ASCII.test(text) ? encoder.encode(text).byteLength : text.length;
}
