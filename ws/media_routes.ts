import {
  AuthError,
  type Principal,
  tokenFromRequest,
  type TokenVerifier,
} from "../auth/verifier.ts";
import { ChatError } from "../chat/errors.ts";
import type { ChatService } from "../chat/service.ts";
import { type MediaKind, type MediaRecord, UUID_PATTERN } from "../chat/types.ts";
import type { MediaMetrics } from "../observability/metrics.ts";
import { decodeSegment } from "./endpoint.ts";
import { httpStatusFor, toErrorFrame } from "./errors.ts";
import { noneMatch, parseRange, rangeStillValid } from "./http_range.ts";
import { type BodyFailure, failWhenStalled, type StallLimits } from "./stalled_body.ts";
import { countedLimits } from "./media_counts.ts";
import { methodRefusal, READ_METHODS } from "./http_methods.ts";
import { createMediaCors } from "./media_cors.ts";
import { originAllowed } from "./origins.ts";
import type { Refusal, RequestKind, RequestLimiter } from "./request_limits.ts";

export interface MediaRouteDeps {
  service: ChatService;
  verifier: TokenVerifier;
  now: () => number;
  onError: (error: unknown, context: string) => void;
  /** Per user on this instance: requests a second, and requests open at once by kind. */
  mediaRequests: RequestLimiter;
  /** Instruments the media routes feed (as `via: "http"`); absent: nothing is measured. */
  instruments?: MediaMetrics;
}

export interface MediaRouteOptions {
  /** Origins allowed to upload, and to read answers (CORS); empty: any (as for sockets). */
  allowedOrigins: readonly string[];
  /** When an upload body that sends too little fails with `invalid_payload`. */
  uploadStall: StallLimits;
  /**
   * How long a download's client may take nothing (its connection asks for no more bytes)
   * before the download is cut and its place given back; default: a minute.
   */
  downloadIdleMs?: number;
}

const UPLOAD_PATH = "/v1/media";
const MEDIA_PATH = /^\/v1\/media\/([^/]+)$/;
const KINDS: readonly string[] = ["image", "audio", "video"] satisfies MediaKind[];
const isKind = (value: string): value is MediaKind => KINDS.includes(value);

/**
 * The media routes, with the WebSocket plane's auth (`?token=` or `Authorization: Bearer`):
 * `GET`/`HEAD /v1/media/{id}` streams a file to a participant (404 for anyone else, and for
 * the media of deleted messages), with `ETag`/`If-None-Match` and single `Range` requests;
 * `POST /v1/media?chat_id=...[&media_type=...]` streams a raw body into the media store and
 * answers 201 with the media id that `send_message` takes as `media_id`.
 *
 * Each user (the token's: a request without a valid one is refused first, so it spends no
 * one's budget) has a request rate and caps on open uploads and downloads, over which a
 * request is answered 429 `rate_limited` with `Retry-After`.
 */
export function createMediaRoutes(deps: MediaRouteDeps, options: MediaRouteOptions) {
  const { service, verifier } = deps;
  const mediaRequests = countedLimits(deps.mediaRequests, {
    via: "http",
    instruments: deps.instruments,
  });
  /** Set by drain(): new uploads are refused, and a body the server's shutdown breaks is 503. */
  let draining = false;
  let uploadsOpen = 0;
  let uploadsAnswered = () => {};
  const shuttingDown = () =>
    new ChatError("unavailable", "the server is shutting down; upload again");

  async function authenticate(request: Request): Promise<Principal> {
    const token = tokenFromRequest(request);
    if (token === null) throw new AuthError("missing", "no token");
    return await verifier.verify(token);
  }

  const cors = createMediaCors(options.allowedOrigins);

  function checkOrigin(request: Request): void {
    if (!originAllowed(options.allowedOrigins, request.headers.get("origin"))) {
      throw new ChatError("forbidden", "origin not allowed");
    }
  }

  async function download(request: Request, principal: Principal, mediaId: string) {
    if (!UUID_PATTERN.test(mediaId)) throw new ChatError("not_found", "no such media");
    const media = await service.findMedia(principal.userId, mediaId.toLowerCase());
    const etag = `"${media.sha256}"`;
    const headers = new Headers({
      "etag": etag,
      // private: per-user access; no-cache: reuse only after asking, so a deleted message's
      // media is gone for everyone at once (the ETag keeps the asking cheap)
      "cache-control": "private, no-cache",
      "x-content-type-options": "nosniff",
      // a file opened as a page (a polyglot the type check let through, a browser that sniffs
      // anyway) runs nothing, loads nothing, and has no origin of ours to act in
      "content-security-policy": "default-src 'none'; sandbox",
    });
    if (noneMatch(request.headers.get("if-none-match"), etag)) {
      return new Response(null, { status: 304, headers });
    }
    headers.set("accept-ranges", "bytes");
    const range = rangeStillValid(request.headers.get("if-range"), etag)
      ? parseRange(request.headers.get("range"), media.size)
      : null;
    if (range === "unsatisfiable") {
      // no body, so no content-type: the file's would describe bytes this answer does not hold
      headers.set("content-range", `bytes */${media.size}`);
      return new Response(null, { status: 416, headers });
    }
    headers.set("content-type", media.mime_type);
    if (range) headers.set("content-range", `bytes ${range.start}-${range.end}/${media.size}`);
    headers.set("content-length", String(range ? range.end - range.start + 1 : media.size));
    const status = range ? 206 : 200;
    if (request.method === "HEAD") return new Response(null, { status, headers });
    return new Response(await service.openMedia(media, range), { status, headers });
  }

  async function upload(request: Request, principal: Principal, url: URL): Promise<Response> {
    const chatId = url.searchParams.get("chat_id") ?? "";
    const mediaType = url.searchParams.get("media_type");
    if (!UUID_PATTERN.test(chatId) || (mediaType !== null && !isKind(mediaType))) {
      throw new ChatError("invalid_payload", "invalid query", {
        issues: [
          ...(UUID_PATTERN.test(chatId)
            ? []
            : [{ path: "chat_id", message: "a chat id is required" }]),
          ...(mediaType === null || isKind(mediaType)
            ? []
            : [{ path: "media_type", message: "image, audio or video" }]),
        ],
      });
    }
    const { membership } = await service.joinChat(principal.userId, chatId.toLowerCase());
    const declared = request.headers.get("content-length");
    const media = await service.uploadMedia(
      { user_id: principal.userId, membership },
      mediaType ?? kindOfContentType(request.headers.get("content-type")),
      {
        stream: failWhenStalled(
          request.body ?? ReadableStream.from<Uint8Array>([]),
          options.uploadStall,
          (why) =>
            why === "broken" && draining
              ? shuttingDown()
              : new ChatError("invalid_payload", failureMessage(why, options.uploadStall)),
        ),
        length: declared === null ? null : Number(declared),
      },
    );
    return Response.json(uploaded(media), {
      status: 201,
      headers: { location: mediaUrl(media.id) },
    });
  }

  /** The 429 of a request over one of its user's limits. */
  function refused(request: Request, refusal: Refusal): Response {
    const message = refusal.limit === "rate"
      ? "too many media requests, slow down"
      : "too many media requests at once";
    return failure(new ChatError("rate_limited", message), request, refusal.retryAfterSeconds);
  }

  /** The one place a media route's failure becomes a response; `retryAfter` for 429 and 503. */
  function failure(error: unknown, request: Request, retryAfter = 1): Response {
    // an answer for this user now (a 404 may be a 200 once they join the vendor), which a
    // cache would otherwise keep by heuristics: a 404 is cacheable without a lifetime
    const uncached = { "cache-control": "no-store" };
    if (error instanceof AuthError) {
      return Response.json({ code: "unauthorized", message: "a valid token is required" }, {
        status: 401,
        headers: { ...uncached, "www-authenticate": "Bearer" },
      });
    }
    const status = httpStatusFor(error);
    // an upload the client gave up on is not our failure
    if (status === 500 && !request.signal.aborted) deps.onError(error, "media");
    const { type: _type, ...body } = toErrorFrame(error, {});
    return Response.json(body, {
      status,
      headers: status === 503 || status === 429
        ? { ...uncached, "retry-after": String(retryAfter) }
        : uncached,
    });
  }

  /** A media request but OPTIONS, by `id` (none: the upload) and its `allowed` methods. */
  async function answer(
    request: Request,
    url: URL,
    id: string | undefined,
    allowed: string,
    sent: Promise<void> | undefined,
  ): Promise<Response> {
    const refusal = methodRefusal(request, `${allowed}, OPTIONS`);
    if (refusal) return refusal;
    const route: RequestKind = id === undefined ? "upload" : "download";
    if (route === "upload") {
      if (draining) return failure(shuttingDown(), request);
      uploadsOpen++;
    }
    let release = () => {};
    try {
      if (route === "upload") checkOrigin(request);
      // the token's user, and only once the token is good: a forged one spends no budget
      const principal = await authenticate(request);
      const admission = mediaRequests.admit(principal.userId, route);
      if (!admission.admitted) return refused(request, admission);
      release = () => admission.release();
      const response = id === undefined
        ? await upload(request, principal, url)
        : await download(request, principal, id);
      // a download is open until its body is sent, or dropped by a client that went away; its
      // place, until its connection is done with it (`sent`): a body cut for a client that takes
      // nothing has the rest of the answer wait on that client's connection for as long as it
      // likes, which no place given back may let one user do again and again
      if (route === "download" && response.body !== null) {
        sent?.then(release, release);
        const idleMs = options.downloadIdleMs ?? 60_000;
        const body = releasedWhenDone(response.body, {
          done: sent ? () => {} : release,
          idleMs,
          // the client sees only its body cut short: a store gone away is a warning
          failed: (error) => deps.onError(error, "media download"),
        });
        return new Response(body, {
          status: response.status,
          headers: response.headers,
        });
      }
      release();
      return response;
    } catch (error) {
      release();
      return failure(error, request);
    } finally {
      if (route === "upload" && --uploadsOpen === 0) uploadsAnswered();
    }
  }

  return {
    /** Whether `pathname` is a media route. */
    handles(pathname: string): boolean {
      return pathname === UPLOAD_PATH || MEDIA_PATH.test(pathname);
    },

    /**
     * Answers a media request, `OPTIONS` (a browser's CORS preflight) included; every failure
     * becomes a response here, readable by an allowed origin as a success is. `sent` settles
     * when the connection is done with the answer (Deno.ServeHandlerInfo's `completed`): a
     * download holds its place until then; without it, until its body ends.
     */
    async handle(request: Request, url: URL, sent?: Promise<void>): Promise<Response> {
      const segment = MEDIA_PATH.exec(url.pathname)?.[1];
      // escaped as the socket paths may be: the same id, not a 404
      const id = segment === undefined ? undefined : decodeSegment(segment);
      const allowed = id === undefined ? "POST" : READ_METHODS;
      if (request.method === "OPTIONS") return cors.preflight(request, allowed);
      return cors.answered(request, await answer(request, url, id, allowed, sent));
    },

    /**
     * Refuses new uploads (503 with Retry-After: the client uploads again elsewhere) and
     * resolves once those under way are answered, or when `signal` aborts. The HTTP server's
     * own shutdown lets responses finish but breaks a request body still coming in.
     */
    async drain(signal?: AbortSignal): Promise<void> {
      draining = true;
      if (uploadsOpen === 0 || signal?.aborted) return;
      const { promise, resolve } = Promise.withResolvers<void>();
      uploadsAnswered = resolve;
      signal?.addEventListener("abort", () => resolve(), { once: true });
      await promise;
    },
  };
}

/** `image/png` says image: the client's word picks the kind to check, never the stored type. */
function kindOfContentType(contentType: string | null): MediaKind | null {
  const top = contentType?.split("/")[0]?.trim().toLowerCase() ?? "";
  return isKind(top) ? top : null;
}

const mediaUrl = (mediaId: string) => `/v1/media/${mediaId}`;

function uploaded(media: MediaRecord) {
  return {
    media_id: media.id,
    chat_id: media.chat_id,
    media_type: media.media_type,
    mime_type: media.mime_type,
    size: media.size,
    media_url: mediaUrl(media.id),
  };
}

/** The most a download hands its connection at once (see releasedWhenDone). */
const DOWNLOAD_PIECE_BYTES = 64 * 1024;

/**
 * `body` as it is, calling `done` once when it ends, fails, is cancelled, or is cut because its
 * client took nothing for `idleMs`: the connection asks for no more (a paused player, a client
 * gone without closing its connection, whose TCP the kernel keeps for hours), which would
 * hold the store's stream as long. (Not the connection: what Deno holds of the answer still
 * waits for the client to take it, and the connection ends only then, or when the client goes;
 * the download's place follows the connection, see `handle`.) One timer per download, looked
 * at once an `idleMs`: a pull only notes its time. Handed on in pieces of at most
 * DOWNLOAD_PIECE_BYTES (views, not copies): the connection asks for the next once it sent the
 * last, so a slow client that still takes a piece within `idleMs` is not taken for a stalled one.
 * A body that fails (the store gone away mid-file) is handed to `failed` and ended short too.
 */
function releasedWhenDone(
  body: ReadableStream<Uint8Array>,
  { done, idleMs, failed }: {
    done: () => void;
    idleMs: number;
    failed: (error: unknown) => void;
  },
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  /** When the last chunk was handed on, or Infinity while the store is being read. */
  let handedAt = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;
  /** What is left of the chunk read last, to hand on piece by piece. */
  let rest: Uint8Array | undefined;
  const handOn = (controller: ReadableStreamDefaultController<Uint8Array>, bytes: Uint8Array) => {
    rest = bytes.byteLength > DOWNLOAD_PIECE_BYTES
      ? bytes.subarray(DOWNLOAD_PIECE_BYTES)
      : undefined;
    handedAt = Date.now();
    controller.enqueue(rest ? bytes.subarray(0, DOWNLOAD_PIECE_BYTES) : bytes);
  };
  const end = () => {
    ended = true;
    clearTimeout(timer);
    done();
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const look = () => {
        const idleFor = Date.now() - handedAt;
        if (idleFor < idleMs) {
          timer = setTimeout(look, idleMs - Math.max(0, idleFor));
          return;
        }
        end();
        // ended short of its content-length: once the client takes what was handed on, the
        // server ends the connection, and the client sees the body cut (an error would be
        // printed by Deno as a line of its own)
        controller.close();
        reader.cancel().catch(() => {});
      };
      timer = setTimeout(look, idleMs);
    },
    async pull(controller) {
      if (rest) return handOn(controller, rest);
      // the store's own time is not the client's
      handedAt = Infinity;
      try {
        const next = await reader.read();
        if (ended) return;
        if (next.done) {
          end();
          controller.close();
        } else {
          handOn(controller, next.value);
        }
      } catch (error) {
        if (ended) return;
        end();
        failed(error);
        // ended short of its content-length, as a cut one is: the client sees the body cut.
        // Errored, the stream would have Deno print the error and its stack on stderr, past
        // the log's format, level and redaction
        controller.close();
      }
    },
    async cancel(reason) {
      end();
      await reader.cancel(reason);
    },
    // pulls only when the connection asks: no chunk more is held than before
  }, { highWaterMark: 0 });
}

/** Why an upload was ended, in the words of its 400. */
function failureMessage(failure: BodyFailure, limits: StallLimits): string {
  switch (failure) {
    case "idle":
      return `the upload sent nothing for ${limits.idleMs / 1000} s`;
    case "slow":
      return `the upload was slower than ${limits.minBytesPerSecond} bytes/s`;
    case "broken":
      return "the upload ended before its body did";
  }
}
