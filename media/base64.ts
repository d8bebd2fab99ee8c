import { MediaError } from "./errors.ts";

/** `data:[<type>][;param...];base64,` at the start of the text; the type is never trusted. */
const DATA_URL = /^data:[^,]{0,256};base64,/i;
const WHITESPACE = /[\t\n\f\r ]/;

/**
 * Decodes standard base64 (padding optional, ASCII whitespace ignored) after stripping a
 * `data:...;base64,` prefix. Anything else in the text is refused, never skipped. A text that
 * is too long for `maxBytes` is refused before it is decoded.
 * Errors: MediaError `invalid_base64`, `too_large`.
 */
export function decodeBase64(text: string, maxBytes: number): Uint8Array {
  const body = stripDataUrl(text);
  if (decodedLength(body) > maxBytes && !WHITESPACE.test(body)) throw tooLarge(maxBytes);
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.fromBase64(body);
  } catch (cause) {
    throw new MediaError("invalid_base64", "the media is not valid base64", { cause });
  }
  // whitespace made the estimate too high to trust; the decoded length is exact
  if (bytes.length > maxBytes) throw tooLarge(maxBytes);
  return bytes;
}

/** The decoded size of unbroken base64 text (no whitespace), padded or not. */
export function decodedLength(body: string): number {
  let padding = 0;
  while (padding < 2 && body.charCodeAt(body.length - 1 - padding) === 61 /* = */) padding++;
  return Math.floor((body.length - padding) * 3 / 4);
}

function stripDataUrl(text: string): string {
  // URL schemes are case-insensitive (RFC 3986): `DATA:` is a data: URL too
  if (text.slice(0, 5).toLowerCase() !== "data:") return text;
  const prefix = DATA_URL.exec(text.slice(0, 300));
  if (!prefix) {
    throw new MediaError("invalid_base64", "a data: URL must be `data:<type>;base64,<data>`");
  }
  return text.slice(prefix[0].length);
}

function tooLarge(maxBytes: number): MediaError {
  return new MediaError("too_large", `the media is larger than ${maxBytes} bytes`);
}
