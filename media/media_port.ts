import { ChatError } from "../chat/errors.ts";
import type { MediaPort } from "../chat/ports.ts";
import { translateDatabaseError } from "../db/errors.ts";
import { decodeBase64 } from "./base64.ts";
import { MediaError } from "./errors.ts";
import { largestLimit, type MediaLimits } from "./kinds.ts";
import type { MediaStore } from "./store.ts";

/**
 * The chat domain's media port over a media store: base64 is decoded here, declared and
 * decoded sizes are checked against `limits` before the store sees a byte, and MediaErrors
 * become ChatErrors (the only place they do).
 */
export function createMediaPort(store: MediaStore, options: { limits: MediaLimits }): MediaPort {
  const { limits } = options;
  return {
    async ingest(body, kind) {
      try {
        if ("base64" in body) {
          if (kind === null) throw new Error("base64 media needs its kind");
          const bytes = decodeBase64(body.base64, limits[kind]);
          return await store.put(bytes, { kind, limits });
        }
        const limit = kind === null ? largestLimit(limits) : limits[kind];
        if (body.length !== null && body.length > limit) {
          await body.stream.cancel().catch(() => {});
          throw new MediaError("too_large", `the media is larger than ${limit} bytes`);
        }
        return await store.put(body.stream, { kind, limits });
      } catch (error) {
        throw toChatError(error, kind);
      }
    },

    async open(sha256, range) {
      let stream;
      try {
        stream = await store.open(sha256, range ?? undefined);
      } catch (error) {
        throw toChatError(error, null);
      }
      if (!stream) throw new ChatError("not_found", "the media's bytes are missing");
      return translated(stream);
    },

    async exists(sha256) {
      try {
        return await store.exists(sha256);
      } catch (error) {
        throw toChatError(error, null);
      }
    },
  };
}

/** `stream` as it is, pulled as it is asked for, but failing with a ChatError as the port does. */
function translated(stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(toChatError(error, null));
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

function toChatError(error: unknown, kind: string | null): ChatError {
  if (!(error instanceof MediaError)) return translateDatabaseError(error);
  const options = { cause: error };
  switch (error.code) {
    case "invalid_base64":
      return new ChatError("invalid_payload", error.message, {
        ...options,
        issues: [{ path: kind ?? "media", message: "not valid base64" }],
      });
    case "too_large":
      return new ChatError("payload_too_large", error.message, options);
    case "unsupported_type":
      return new ChatError("unsupported_media", error.message, options);
    case "not_found":
      return new ChatError("not_found", error.message, options);
    case "unavailable":
      return new ChatError("unavailable", error.message, options);
  }
}
