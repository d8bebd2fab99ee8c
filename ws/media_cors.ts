import { originAllowed } from "./origins.ts";

/**
 * CORS of the media routes, for web apps on other origins: they send `Authorization: Bearer`
 * (no cookies), so a browser asks first (`OPTIONS`) and reads an answer only when it names
 * their origin. Origins follow ALLOWED_ORIGINS as the upgrade and the upload do: empty, any.
 */

/** Request headers a web app may send: the bearer token, the upload's type, and range reads. */
const ALLOWED_HEADERS = "authorization, content-type, range, if-none-match, if-range";
/** Response headers a web app may read besides the safelisted ones. */
const EXPOSED_HEADERS = "location, etag, content-range, retry-after, content-length, accept-ranges";
/** How long a browser may reuse a preflight: a change of ALLOWED_ORIGINS is seen within it. */
const MAX_AGE_SECONDS = 600;

/** The preflight answer and the CORS headers of the media routes, for `allowedOrigins`. */
export function createMediaCors(allowedOrigins: readonly string[]) {
  /** The origin to name in `Access-Control-Allow-Origin`, or null for none. */
  function corsOrigin(request: Request): string | null {
    const origin = request.headers.get("origin");
    return origin && originAllowed(allowedOrigins, origin) ? origin : null;
  }

  return {
    /**
     * The answer to `OPTIONS` on a media route whose methods are `methods`: 204 naming the
     * origin, methods and headers allowed; 403 without CORS headers for an origin not allowed.
     */
    preflight(request: Request, methods: string): Response {
      const headers = new Headers({ allow: `${methods}, OPTIONS`, vary: "Origin" });
      const origin = corsOrigin(request);
      if (!originAllowed(allowedOrigins, request.headers.get("origin"))) {
        return new Response("origin not allowed\n", { status: 403, headers });
      }
      if (origin !== null) {
        headers.set("access-control-allow-origin", origin);
        headers.set("access-control-allow-methods", methods);
        headers.set("access-control-allow-headers", ALLOWED_HEADERS);
        headers.set("access-control-max-age", String(MAX_AGE_SECONDS));
      }
      return new Response(null, { status: 204, headers });
    },

    /**
     * `response` readable by the request's origin when it is allowed, errors too: a web app
     * must see its 401, 404 or 429 (and its `Retry-After`) to act on it.
     */
    answered(request: Request, response: Response): Response {
      // the answer depends on Origin: a browser's cache must not hand one origin's to another
      response.headers.append("vary", "Origin");
      const origin = corsOrigin(request);
      if (origin !== null) {
        response.headers.set("access-control-allow-origin", origin);
        response.headers.set("access-control-expose-headers", EXPOSED_HEADERS);
      }
      return response;
    },
  };
}
