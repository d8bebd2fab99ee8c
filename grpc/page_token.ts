import { createHmac, timingSafeEqual } from "node:crypto";
import { ChatError } from "../chat/errors.ts";

/** How long a page token is honoured: long enough to page by hand, short enough to go stale. */
export const PAGE_TOKEN_TTL_MS = 60 * 60 * 1000;

const VERSION = "p1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Signs and reads opaque page tokens. */
export interface PageTokens {
  /**
   * A token for the page after `cursor` of a `method` call with these `filters` (everything of
   * the request but the page size and token).
   */
  issue(method: string, filters: unknown, cursor: unknown): string;
  /**
   * The cursor of a token issued for the same method and filters, not yet expired. Anything
   * else (forged, altered, truncated, for another request, expired, or signed with another
   * key) is ChatError `invalid_payload` on the field `page_token`; the cursor still needs
   * checking by its reader.
   */
  read(method: string, filters: unknown, token: string): unknown;
}

/**
 * Page tokens are `p1.<payload>.<mac>` in base64url: the payload is the cursor and an expiry,
 * the mac an HMAC-SHA256 over the payload, the method and the request's filters. The key is
 * derived from `secret` (the admin token), so every instance honours every other's tokens
 * and rotating the admin token retires them all.
 */
export function createPageTokens(
  secret: string,
  options: { ttlMs?: number; now?: () => number } = {},
): PageTokens {
  const ttlMs = options.ttlMs ?? PAGE_TOKEN_TTL_MS;
  const now = options.now ?? Date.now;
  const key = createHmac("sha256", secret).update("chat.admin.v1 page tokens").digest();

  const mac = (payload: string, method: string, filters: unknown) =>
    createHmac("sha256", key)
      .update(`${VERSION}\n${method}\n${JSON.stringify(filters)}\n${payload}`)
      .digest();

  const invalid = (message: string) =>
    new ChatError("invalid_payload", `invalid page token: ${message}`, {
      issues: [{ path: "page_token", message }],
    });

  return {
    issue(method, filters, cursor) {
      const payload = encoder
        .encode(JSON.stringify({ e: now() + ttlMs, c: cursor }))
        .toBase64({ alphabet: "base64url", omitPadding: true });
      const signature = new Uint8Array(mac(payload, method, filters))
        .toBase64({ alphabet: "base64url", omitPadding: true });
      return `${VERSION}.${payload}.${signature}`;
    },

    read(method, filters, token) {
      const parts = token.split(".");
      if (parts.length !== 3 || parts[0] !== VERSION) {
        throw invalid("is not a page token of this service");
      }
      const [, payload, signature] = parts as [string, string, string];
      // The mac as issued, character for character: a decoder also takes padding, blanks and
      // other spellings of the same bytes, which would honour an altered token.
      const given = encoder.encode(signature);
      const expected = encoder.encode(
        new Uint8Array(mac(payload, method, filters))
          .toBase64({ alphabet: "base64url", omitPadding: true }),
      );
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw invalid("was altered, or belongs to another request");
      }
      // Signed by us, so well-formed; parsed defensively all the same.
      let body: unknown;
      try {
        body = JSON.parse(
          decoder.decode(Uint8Array.fromBase64(payload, { alphabet: "base64url" })),
        );
      } catch {
        throw invalid("is not a page token of this service");
      }
      if (typeof body !== "object" || body === null || !("e" in body) || !("c" in body)) {
        throw invalid("is not a page token of this service");
      }
      if (typeof body.e !== "number" || body.e <= now()) {
        throw invalid("has expired; start again from the first page");
      }
      return body.c;
    },
  };
}
