import { AuthError, tokenFromRequest, type TokenVerifier } from "../auth/verifier.ts";
import type { ChatFeed } from "../chat/feed.ts";
import type { ChatService } from "../chat/service.ts";
import { CloseCode } from "./errors.ts";
import { Connection, type Endpoint } from "./connection.ts";

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, boolean>;
}

export interface HttpDeps {
  service: ChatService;
  feed: ChatFeed;
  verifier: TokenVerifier;
  readiness: () => Promise<ReadinessReport>;
  /** Prometheus text; absent: 404. */
  metrics?: () => Promise<string>;
  now: () => number;
  onError: (error: unknown, context: string) => void;
}

export interface HttpOptions {
  maxFrameBytes: number;
  idleTimeoutSeconds: number;
  /** Origins allowed to open sockets; empty: any. */
  allowedOrigins: readonly string[];
}

const CHAT_PATH = /^\/v1\/ws\/chat\/([^/]+)\/?$/;
const CHATS_PATH = /^\/v1\/ws\/chats\/?$/;

/**
 * The HTTP side of the service: WebSocket endpoints, health and metrics. It knows
 * Request/Response and the chat service, nothing of the admin plane.
 */
export function createHttpHandler(deps: HttpDeps, options: HttpOptions) {
  const connections = new Set<Connection>();

  function endpointOf(pathname: string): Endpoint | null {
    const chat = CHAT_PATH.exec(pathname);
    if (chat) return { kind: "chat", chatId: decodeURIComponent(chat[1]!) };
    if (CHATS_PATH.test(pathname)) return { kind: "chats" };
    return null;
  }

  function upgrade(request: Request, endpoint: Endpoint): Response {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade\n", { status: 426 });
    }
    const origin = request.headers.get("origin");
    if (origin && options.allowedOrigins.length > 0 && !options.allowedOrigins.includes(origin)) {
      return new Response("origin not allowed\n", { status: 403 });
    }
    const token = tokenFromRequest(request);
    // Started before the handshake so verification overlaps it; failures close after it.
    const principal = token === null
      ? Promise.reject(new AuthError("missing", "no token"))
      : deps.verifier.verify(token);
    principal.catch(() => {});
    const { socket, response } = Deno.upgradeWebSocket(request, {
      idleTimeout: options.idleTimeoutSeconds,
    });
    socket.onopen = async () => {
      let verified;
      try {
        verified = await principal;
      } catch {
        return socket.close(CloseCode.tokenInvalid, "invalid token");
      }
      // an unknown chat id of the wrong shape is as unknown as any other
      if (endpoint.kind === "chat" && !isUuid(endpoint.chatId)) {
        return socket.close(CloseCode.forbidden, "forbidden");
      }
      const connection = new Connection(socket, verified, endpoint, {
        service: deps.service,
        feed: deps.feed,
        maxFrameBytes: options.maxFrameBytes,
        now: deps.now,
        onError: deps.onError,
        onClose: (closed) => connections.delete(closed),
      });
      if (!connection.closed) connections.add(connection);
    };
    return response;
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const endpoint = endpointOf(url.pathname);
    if (endpoint) return upgrade(request, endpoint);
    switch (url.pathname) {
      case "/healthz":
        return new Response("ok\n");
      case "/readyz": {
        const report = await deps.readiness();
        return Response.json(report, { status: report.ready ? 200 : 503 });
      }
      case "/metrics":
        if (!deps.metrics) break;
        return new Response(await deps.metrics(), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
    }
    return new Response("not found\n", { status: 404 });
  }

  return {
    /** The Deno.serve handler; errors become a 500 here and nowhere else. */
    async fetch(request: Request): Promise<Response> {
      try {
        return await handle(request);
      } catch (error) {
        deps.onError(error, "http");
        return new Response("internal error\n", { status: 500 });
      }
    },
    /** Open sockets on this instance. */
    get connectionCount(): number {
      return connections.size;
    },
    /** Tells every socket to reconnect elsewhere (1012). */
    closeAll(code: number = CloseCode.restarting, reason = "server shutting down"): void {
      for (const connection of [...connections]) connection.close(code, reason);
    },
  };
}

export type HttpHandler = ReturnType<typeof createHttpHandler>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isUuid = (value: string) => UUID.test(value);
