import {
  AuthError,
  type Principal,
  tokenFromRequest,
  type TokenVerifier,
} from "../auth/verifier.ts";
import { ChatError } from "../chat/errors.ts";
import type { ChatService } from "../chat/service.ts";
import type { MediaKind, MediaRecord } from "../chat/types.ts";
import { httpStatusFor, toErrorFrame } from "./errors.ts";
import { noneMatch, parseRange, rangeStillValid } from "./http_range.ts";

export interface MediaRouteDeps {
  service: ChatService;
  verifier: TokenVerifier;
  onError: (error: unknown, context: string) => void;
}

export interface MediaRouteOptions {
  /** Origins allowed to upload; empty: any (as for sockets). */
  allowedOrigins: readonly string[];
}

const UPLOAD_PATH = "/v1/media";
const MEDIA_PATH = /^\/v1\/media\/([^/]+)$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KINDS: readonly string[] = ["image", "audio", "video"] satisfies MediaKind[];
const isKind = (value: string): value is MediaKind => KINDS.includes(value);

/**
 * The media routes, with the WebSocket plane's auth (`?token=` or `Authorization: Bearer`):
 * `GET`/`HEAD /v1/media/{id}` streams a file to a participant (404 for anyone else, and for
 * the media of deleted messages), with `ETag`/`If-None-Match` and single `Range` requests;
 * `POST /v1/media?chat_id=...[&media_type=...]` streams a raw body into the media store and
 * answers 201 with the media id that `send_message` takes as `media_id`.
 */
export function createMediaRoutes(deps: MediaRouteDeps, options: MediaRouteOptions) {
  const { service, verifier } = deps;

  async function authenticate(request: Request): Promise<Principal> {
    const token = tokenFromRequest(request);
    if (token === null) throw new AuthError("missing", "no token");
    return await verifier.verify(token);
  }

  async function download(request: Request, mediaId: string): Promise<Response> {
    const principal = await authenticate(request);
    if (!UUID.test(mediaId)) throw new ChatError("not_found", "no such media");
    const media = await service.findMedia(principal.userId, mediaId.toLowerCase());
    const etag = `"${media.sha256}"`;
    const headers = new Headers({
      "etag": etag,
      // private: per-user access; no-cache: reuse only after asking, so a deleted message's
      // media is gone for everyone at once (the ETag keeps the asking cheap)
      "cache-control": "private, no-cache",
      "x-content-type-options": "nosniff",
    });
    if (noneMatch(request.headers.get("if-none-match"), etag)) {
      return new Response(null, { status: 304, headers });
    }
    headers.set("content-type", media.mime_type);
    headers.set("accept-ranges", "bytes");
    const range = rangeStillValid(request.headers.get("if-range"), etag)
      ? parseRange(request.headers.get("range"), media.size)
      : null;
    if (range === "unsatisfiable") {
      headers.set("content-range", `bytes */${media.size}`);
      return new Response(null, { status: 416, headers });
    }
    if (range) headers.set("content-range", `bytes ${range.start}-${range.end}/${media.size}`);
    headers.set("content-length", String(range ? range.end - range.start + 1 : media.size));
    const status = range ? 206 : 200;
    if (request.method === "HEAD") return new Response(null, { status, headers });
    return new Response(await service.openMedia(media, range), { status, headers });
  }

  async function upload(request: Request, url: URL): Promise<Response> {
    const origin = request.headers.get("origin");
    if (origin && options.allowedOrigins.length > 0 && !options.allowedOrigins.includes(origin)) {
      throw new ChatError("forbidden", "origin not allowed");
    }
    const principal = await authenticate(request);
    const chatId = url.searchParams.get("chat_id") ?? "";
    const mediaType = url.searchParams.get("media_type");
    if (!UUID.test(chatId) || (mediaType !== null && !isKind(mediaType))) {
      throw new ChatError("invalid_payload", "invalid query", {
        issues: [
          ...(UUID.test(chatId) ? [] : [{ path: "chat_id", message: "a chat id is required" }]),
          ...(mediaType === null || isKind(mediaType)
            ? []
            : [{ path: "media_type", message: "image, audio or video" }]),
        ],
      });
    }
    const membership = await service.joinChat(principal.userId, chatId.toLowerCase());
    const declared = request.headers.get("content-length");
    const media = await service.uploadMedia(
      { user_id: principal.userId, membership },
      mediaType ?? kindOfContentType(request.headers.get("content-type")),
      {
        stream: request.body ?? ReadableStream.from<Uint8Array>([]),
        length: declared === null ? null : Number(declared),
      },
    );
    return Response.json(uploaded(media), {
      status: 201,
      headers: { location: mediaUrl(media.id) },
    });
  }

  function failure(error: unknown, request: Request): Response {
    if (error instanceof AuthError) {
      return Response.json({ code: "unauthorized", message: "a valid token is required" }, {
        status: 401,
        headers: { "www-authenticate": "Bearer" },
      });
    }
    const status = httpStatusFor(error);
    // an upload the client gave up on is not our failure
    if (status === 500 && !request.signal.aborted) deps.onError(error, "media");
    const { type: _type, ...body } = toErrorFrame(error, {});
    return Response.json(body, {
      status,
      headers: status === 503 ? { "retry-after": "1" } : {},
    });
  }

  return {
    /** Whether `pathname` is a media route. */
    handles(pathname: string): boolean {
      return pathname === UPLOAD_PATH || MEDIA_PATH.test(pathname);
    },

    /** Answers a media request; every failure becomes a response here. */
    async handle(request: Request, url: URL): Promise<Response> {
      const id = MEDIA_PATH.exec(url.pathname)?.[1];
      const allowed = id === undefined ? "POST" : "GET, HEAD";
      if (!allowed.split(", ").includes(request.method)) {
        return new Response("method not allowed\n", { status: 405, headers: { allow: allowed } });
      }
      try {
        return id === undefined ? await upload(request, url) : await download(request, id);
      } catch (error) {
        return failure(error, request);
      }
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
