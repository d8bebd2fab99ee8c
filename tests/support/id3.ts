import { fixture } from "./media.ts";

// Real MP3s behind ID3v2 tags of a chosen length, to put the tag's end where a test wants it:
// the frames of tests/fixtures/audio.mp3 after a tag made here.

const HEADER_BYTES = 10;
const ascii = (text: string) => [...text].map((char) => char.charCodeAt(0));
const syncsafe = (value: number) => [21, 14, 7, 0].map((shift) => (value >> shift) & 0x7f);

/** The MPEG frames of tests/fixtures/audio.mp3, its own ID3v2 tag (no footer) cut off. */
export async function mp3Frames(): Promise<Uint8Array<ArrayBuffer>> {
  const mp3 = await fixture("audio.mp3");
  const size = mp3.subarray(6, HEADER_BYTES).reduce((sum, byte) => sum * 128 + byte, 0);
  return mp3.slice(HEADER_BYTES + size);
}

/**
 * An ID3v2.4 tag of exactly `length` bytes: a header, one PRIV frame filling the rest and,
 * with `footer`, the footer that v2.4 allows at the end (a copy of the header as "3DI").
 */
export function id3Tag(length: number, options: { footer?: boolean } = {}): Uint8Array {
  const footer = options.footer === true;
  const frames = length - HEADER_BYTES - (footer ? HEADER_BYTES : 0);
  const owner = ascii("chat-tests\0");
  if (frames < HEADER_BYTES + owner.length) {
    throw new RangeError(`an ID3v2 tag of ${length} bytes is too short`);
  }
  const tag = new Uint8Array(length);
  const header = [...ascii("ID3"), 4, 0, footer ? 0x10 : 0, ...syncsafe(frames)];
  tag.set(header);
  // the frame's data after its owner stays zeros
  tag.set([...ascii("PRIV"), ...syncsafe(frames - HEADER_BYTES), 0, 0, ...owner], HEADER_BYTES);
  if (footer) tag.set([...ascii("3DI"), ...header.slice(3)], length - HEADER_BYTES);
  return tag;
}

/** The bytes one after the other, in one array. */
export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A real MP3 whose ID3v2 tag ends at byte `tagEnd` (its frames start there). */
export async function mp3WithTagEndingAt(
  tagEnd: number,
  options: { footer?: boolean } = {},
): Promise<Uint8Array<ArrayBuffer>> {
  return concat(id3Tag(tagEnd, options), await mp3Frames());
}
