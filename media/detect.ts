import { fileTypeFromBuffer } from "file-type";
import { MediaError } from "./errors.ts";
import type { MediaKind } from "./kinds.ts";

/** How many bytes the type is read from (file-type's own "reasonable" sample). */
export const DETECTION_BYTES = 4100;

/**
 * The most leading bytes a type is ever read from. An MP3 often starts with an ID3v2 tag
 * (cover art can make it megabytes) and its frames come after it, so the sample is taken past
 * such tags; a tag that would take it beyond this bound is left to file-type, which takes a
 * tag running past its sample for MP3. The bound keeps a forged tag size from making a
 * caller hold more of an upload than this before the type is known.
 */
export const MAX_DETECTION_BYTES = 1024 * 1024;

/** How many ID3v2 tags in a row are skipped; real files have one, rarely two. */
const MAX_ID3_TAGS = 8;
const ID3_HEADER_BYTES = 10;

/** Whether `bytes` hold `signature` (one char a byte) at `offset`. */
function holds(bytes: Uint8Array, offset: number, signature: string): boolean {
  if (offset + signature.length > bytes.length) return false;
  for (let index = 0; index < signature.length; index++) {
    if (bytes[offset + index] !== signature.charCodeAt(index)) return false;
  }
  return true;
}

const png = (head: Uint8Array) => holds(head, 0, "\x89PNG\r\n\x1a\n");
const ogg = (head: Uint8Array) => holds(head, 0, "OggS");
/** An ISO base media file (MP4, M4A, QuickTime with a brand) starts with its `ftyp` box. */
const isoMedia = (head: Uint8Array) => holds(head, 4, "ftyp");

/**
 * The signature each accepted type's files start with (after ID3v2 tags, for an MP3), checked
 * on what file-type names: it reads the type from past any number of UTF-8 byte order marks,
 * and takes "GIF" alone for a GIF, so a file of its type could carry bytes of the sender's
 * choosing in front, or be no GIF at all.
 */
const SIGNATURES = {
  "image/png": png,
  "image/apng": png,
  "image/jpeg": (head: Uint8Array) => holds(head, 0, "\xff\xd8\xff"),
  "image/gif": (head: Uint8Array) => holds(head, 0, "GIF87a") || holds(head, 0, "GIF89a"),
  "image/webp": (head: Uint8Array) => holds(head, 0, "RIFF") && holds(head, 8, "WEBP"),
  // a frame's sync bits, or an ID3v2 tag too long to read past (file-type takes it for MP3)
  "audio/mpeg": (head: Uint8Array) =>
    (head[0] === 0xff && ((head[1] ?? 0) & 0xe0) === 0xe0) || holds(head, 0, "ID3"),
  "audio/ogg": ogg,
  "audio/ogg; codecs=opus": ogg,
  "audio/wav": (head: Uint8Array) => holds(head, 0, "RIFF") && holds(head, 8, "WAVE"),
  "audio/x-m4a": isoMedia,
  "audio/mp4": isoMedia,
  "video/mp4": isoMedia,
  "video/x-m4v": isoMedia,
  "video/webm": (head: Uint8Array) => holds(head, 0, "\x1a\x45\xdf\xa3"),
  // or a classic QuickTime file's first atom
  "video/quicktime": (head: Uint8Array) =>
    ["ftyp", "free", "mdat", "moov", "wide"].some((atom) => holds(head, 4, atom)),
} satisfies Record<string, (head: Uint8Array) => boolean>;

type AcceptedType = keyof typeof SIGNATURES;
const types = (...mimes: AcceptedType[]): ReadonlySet<string> => new Set(mimes);

/** Whether `head` starts with `mime`'s signature; a type not accepted is refused by its name. */
function startsAs(mime: string, head: Uint8Array): boolean {
  return !Object.hasOwn(SIGNATURES, mime) || SIGNATURES[mime as AcceptedType](head);
}

/**
 * The detected MIME types each kind accepts (protocol.md: image png, jpeg, gif, webp; audio
 * mpeg, ogg, wav, mp4/m4a, webm; video mp4, webm, quicktime). MP4 and WebM are containers
 * that hold sound alone as well as pictures, and the first bytes do not tell which (the
 * tracks may sit at the end of the file), so both kinds accept them; the detected type is
 * what is stored and served either way, and browsers play a `video/*` source in `<audio>`.
 */
export const ACCEPTED_TYPES: Readonly<Record<MediaKind, ReadonlySet<string>>> = {
  image: types("image/png", "image/apng", "image/jpeg", "image/gif", "image/webp"),
  audio: types(
    "audio/mpeg",
    "audio/ogg",
    "audio/ogg; codecs=opus",
    "audio/wav",
    "audio/x-m4a",
    "audio/mp4",
    "video/mp4",
    "video/webm",
  ),
  video: types("video/mp4", "video/x-m4v", "video/webm", "video/quicktime"),
};

/** A file's type as its bytes tell it. */
export interface DetectedType {
  kind: MediaKind;
  /** The MIME type read from the magic bytes; never the sender's word. */
  mime: string;
}

/**
 * How many leading bytes detectMedia needs of a file that begins with `head`: DETECTION_BYTES
 * past the ID3v2 tags it starts with, at most MAX_DETECTION_BYTES. More bytes can only raise
 * it (they may show another tag), so a caller reading a stream asks again with what it holds
 * until it holds that many or the file ends.
 */
export function detectionLength(head: Uint8Array): number {
  return id3TagsEnd(head) + DETECTION_BYTES;
}

/**
 * Reads the type from the first `detectionLength(head)` bytes of a file (or the whole file,
 * when shorter) and checks it against the kind the sender gave; with no kind, the first that
 * accepts it (image, video, audio: an MP4 or WebM of unknown kind is taken as video). ID3v2
 * tags at the start are skipped and the type is read from the bytes after them, so a tag
 * followed by junk, or running past the end of the file, is refused; only a tag that ends
 * too far for MAX_DETECTION_BYTES is taken for MP3 unseen, as file-type takes it.
 * Errors: MediaError `unsupported_type`.
 */
export async function detectMedia(head: Uint8Array, kind: MediaKind | null): Promise<DetectedType> {
  // file-type skips an ID3v2 tag too, but only within the sample it is given: a tag ending a
  // few bytes before the sample's end left too little of the audio to recognise, and it does
  // not know the ID3v2.4 footer
  const start = id3TagsEnd(head);
  let mime: string | undefined;
  try {
    mime = (await fileTypeFromBuffer(head.subarray(start, start + DETECTION_BYTES)))?.mime;
  } catch {
    // file-type gives up on some malformed headers by throwing; that is "unknown" too
  }
  // tags are an MP3's; anything else behind them would be stored with bytes of the sender's
  // choosing in front of it
  if (
    mime === undefined || !startsAs(mime, head.subarray(start)) ||
    (start > 0 && mime !== "audio/mpeg")
  ) {
    throw new MediaError("unsupported_type", "the file is not an image, audio or video we accept");
  }
  if (kind !== null) {
    if (ACCEPTED_TYPES[kind].has(mime)) return { kind, mime };
    throw new MediaError(
      "unsupported_type",
      `the file is ${mime}, which is not an accepted ${kind}`,
    );
  }
  const inferred = (["image", "video", "audio"] as const).find((k) => ACCEPTED_TYPES[k].has(mime));
  if (inferred === undefined) {
    throw new MediaError("unsupported_type", `the file is ${mime}, which is not accepted`);
  }
  return { kind: inferred, mime };
}

/**
 * Where the ID3v2 tags at the start of `head` end: each tag is followed while its header is
 * in `head` and a whole sample after it stays within MAX_DETECTION_BYTES.
 */
function id3TagsEnd(head: Uint8Array): number {
  let end = 0;
  for (let tags = 0; tags < MAX_ID3_TAGS; tags++) {
    const length = id3TagLength(head.subarray(end));
    if (length === null || end + length + DETECTION_BYTES > MAX_DETECTION_BYTES) break;
    end += length;
  }
  return end;
}

/**
 * The length of the ID3v2 tag that `bytes` start with (header, frames, padding and footer),
 * or null when they do not start with a whole, well-formed ID3v2 header: "ID3", two version
 * bytes other than 0xff, flags, and a size of four bytes of seven bits each ("syncsafe").
 */
function id3TagLength(bytes: Uint8Array): number | null {
  if (bytes.length < ID3_HEADER_BYTES) return null;
  const byte = (index: number) => bytes[index]!;
  if (byte(0) !== 0x49 || byte(1) !== 0x44 || byte(2) !== 0x33) return null;
  if (byte(3) === 0xff || byte(4) === 0xff) return null;
  let size = 0;
  for (let index = 6; index < ID3_HEADER_BYTES; index++) {
    if (byte(index) > 0x7f) return null;
    size = size * 128 + byte(index);
  }
  // only ID3v2.4 has a footer (a copy of the header with "3DI"), flagged by bit 4
  const footer = byte(3) === 4 && (byte(5) & 0x10) !== 0 ? ID3_HEADER_BYTES : 0;
  return ID3_HEADER_BYTES + size + footer;
}
