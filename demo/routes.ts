import { bundleDemo } from "./bundle.ts";
import { methodRefusal, READ_METHODS } from "../ws/http_methods.ts";

/** Files of the page, by the path they are served at. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/demo/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};
const SCRIPT_PATH = "/demo/app.js";

const HEADERS = {
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  // the page talks to its own origin only; images come from /v1/media/; no other site may
  // frame it (clickjacking its composer)
  "content-security-policy":
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
};

export interface DemoPageOptions {
  /** The claim holding the user id (JWT_USER_CLAIM); default `user_id`, else `sub`. */
  userClaim?: string;
}

/** The page's routes, in the manner of the media routes: ws/server.ts asks, then hands over. */
export interface DemoRoutes {
  handles(pathname: string): boolean;
  handle(request: Request, url: URL): Promise<Response>;
}

/**
 * The demo chat page (DEMO_PAGE=1): `/`, its stylesheet, and its script, bundled with the
 * client library on first request and kept. A page that cannot be built (as under `deno task
 * start`, which may not run `deno bundle` or read demo/) answers 503 saying so.
 */
export function createDemoRoutes(
  deps: { onError: (error: unknown, context: string) => void },
  options: DemoPageOptions = {},
): DemoRoutes {
  let script: Promise<string> | undefined;

  async function file(name: string): Promise<Uint8Array<ArrayBuffer>> {
    const bytes = await Deno.readFile(new URL(name, import.meta.url));
    return name === "index.html" && options.userClaim !== undefined
      ? withUserClaim(bytes, options.userClaim)
      : bytes;
  }

  function unavailable(error: unknown): Response {
    deps.onError(error, "demo page");
    return new Response("the demo page could not be built; run it with `deno task dev`\n", {
      status: 503,
    });
  }

  return {
    handles: (pathname) => pathname === SCRIPT_PATH || Object.hasOwn(FILES, pathname),
    async handle(request, url) {
      const refusal = methodRefusal(request, READ_METHODS);
      if (refusal) return refusal;
      let body: string | Uint8Array<ArrayBuffer>;
      let type: string;
      try {
        if (url.pathname === SCRIPT_PATH) {
          script ??= bundleDemo().catch((error) => {
            script = undefined;
            throw error;
          });
          body = await script;
          type = "text/javascript; charset=utf-8";
        } else {
          const entry = FILES[url.pathname]!;
          body = await file(entry.file);
          type = entry.type;
        }
      } catch (error) {
        return unavailable(error);
      }
      const headers = { ...HEADERS, "content-type": type };
      return new Response(request.method === "HEAD" ? null : body, { headers });
    },
  };
}

/**
 * The page with a `<meta name="chat-user-claim">` naming the claim the server reads the user id
 * from, so that the page shows who a token signs in as (and which messages are theirs) the way
 * the server sees it.
 */
function withUserClaim(page: Uint8Array, claim: string): Uint8Array<ArrayBuffer> {
  const escaped = claim.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
  const meta = `<meta name="chat-user-claim" content="${escaped}">`;
  const html = new TextDecoder().decode(page).replace("<head>", `<head>\n    ${meta}`);
  return new TextEncoder().encode(html);
}
