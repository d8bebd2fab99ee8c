import { fileTypeFromBuffer } from "file-type";
import { MediaError } from "./errors.ts";
import type { MediaKind } from "./kinds.ts";

/** How many leading bytes the type is read from (file-type's own "reasonable" sample). */
export const DETECTION_BYTES = 4100;

/**
 * The detected MIME types each kind accepts (protocol.md: image png, jpeg, gif, webp; audio
 * mpeg, ogg, wav, mp4/m4a, webm; video mp4, webm, quicktime). MP4 and WebM are containers
 * that hold sound alone as well as pictures, and the first bytes do not tell which (the
 * tracks may sit at the end of the file), so both kinds accept them; the detected type is
 * what is stored and served either way, and browsers play a `video/*` source in `<audio>`.
 */
export const ACCEPTED_TYPES: Readonly<Record<MediaKind, ReadonlySet<string>>> = {
  image: new Set(["image/png", "image/apng", "image/jpeg", "image/gif", "image/webp"]),
  audio: new Set([
    "audio/mpeg",
    "audio/ogg",
    "audio/ogg; codecs=opus",
    "audio/wav",
    "audio/x-m4a",
    "audio/mp4",
    "video/mp4",
    "video/webm",
  ]),
  video: new Set(["video/mp4", "video/x-m4v", "video/webm", "video/quicktime"]),
};

/** A file's type as its bytes tell it. */
export interface DetectedType {
  kind: MediaKind;
  /** The MIME type read from the magic bytes; never the sender's word. */
  mime: string;
}

/**
 * Reads the type from the first bytes of a file (`DETECTION_BYTES` are enough) and checks it
 * against the kind the sender gave; with no kind, the first that accepts it (image, video,
 * audio: an MP4 or WebM of unknown kind is taken as video).
 * Errors: MediaError `unsupported_type`.
 */
export async function detectMedia(head: Uint8Array, kind: MediaKind | null): Promise<DetectedType> {
  let mime: string | undefined;
  try {
    mime = (await fileTypeFromBuffer(head.subarray(0, DETECTION_BYTES)))?.mime;
  } catch {
    // file-type gives up on some malformed headers by throwing; that is "unknown" too
  }
  if (mime === undefined) {
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
