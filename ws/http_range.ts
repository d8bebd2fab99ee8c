import type { ByteRange } from "../chat/ports.ts";

// the unit is case-insensitive (RFC 9110 §14.1)
const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/i;

/**
 * The part of a `size`-byte file a `Range` header asks for (RFC 9110 §14): null for the whole
 * file (no header, another unit, several ranges, or a malformed one, which a server may
 * ignore), "unsatisfiable" for a range that starts past the end (416).
 */
export function parseRange(
  header: string | null,
  size: number,
): ByteRange | "unsatisfiable" | null {
  if (header === null) return null;
  const match = SINGLE_RANGE.exec(header.trim().replaceAll(" ", ""));
  if (!match) return null;
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return null;
  if (first === "") {
    // the last N bytes
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  // open-ended: to the end, however far past it the start is (then unsatisfiable, not ignored)
  const end = last === "" ? Infinity : Number(last);
  if (end < start) return null;
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(end, size - 1) };
}

/** Whether an `If-None-Match` header matches `etag` (weak comparison, `*` matches any). */
export function noneMatch(header: string | null, etag: string): boolean {
  if (header === null) return false;
  const bare = (tag: string) => tag.trim().replace(/^W\//, "");
  return header.split(",").some((tag) => tag.trim() === "*" || bare(tag) === bare(etag));
}

/** Whether a `Range` may be served: no `If-Range`, or one equal to `etag` (strong). */
export function rangeStillValid(ifRange: string | null, etag: string): boolean {
  return ifRange === null || ifRange.trim() === etag;
}
