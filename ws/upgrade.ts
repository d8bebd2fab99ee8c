import { AuthError, tokenFromRequest, type TokenVerifier } from "../auth/verifier.ts";
import { ChatError } from "../chat/errors.ts";
import { UUID_PATTERN } from "../chat/types.ts";
import { logger } from "../observability/log.ts";
import { Connection, type ConnectionLimits } from "./connection.ts";
import type { ConnectionRegistry } from "./connection_registry.ts";
import type { Endpoint } from "./endpoint.ts";
import { CloseCode, closeCodeFor } from "./errors.ts";
import { originAllowed } from "./origins.ts";
import { earlyFrameLimit, FrameIntake, type Taken } from "./frame_intake.ts";
import { createSocketCap } from "./socket_cap.ts";

export interface UpgradeDeps {
  verifier: TokenVerifier;
  /** Where the socket goes once its token is checked. */
  connections: ConnectionRegistry;
  onError: (error: unknown, context: string) => void;
}

export interface UpgradeOptions {
  idleTimeoutSeconds: number;
  /** Sockets this instance may hold at once; more are answered 503 (see socket_cap.ts). */
  maxSockets: number;
  limits: ConnectionLimits;
  /** Origins allowed to open sockets; empty: any. */
  allowedOrigins: readonly string[];
}

/**
 * The WebSocket handshake of both endpoints: the request is checked (upgrade, shutdown, origin),
 * answered 101 at once, and its token verified while the handshake goes on; the socket then
 * gets its Connection, or is closed with the code that says why not.
 */
export function createUpgrade(deps: UpgradeDeps, options: UpgradeOptions) {
  const { connections } = deps;
  const { connectionDeps } = connections;
  const log = logger("ws");
  const cap = createSocketCap(options.maxSockets);

  return function upgrade(request: Request, endpoint: Endpoint): Response {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade\n", { status: 426 });
    }
    if (connections.draining) {
      return new Response("shutting down, reconnect\n", {
        status: 503,
        headers: { "retry-after": "1" },
      });
    }
    if (!cap.admits()) {
      // the connection goes too: its descriptor is what the cap is short of
      return new Response("too many sockets on this instance, try again\n", {
        status: 503,
        headers: { "retry-after": "1", connection: "close" },
      });
    }
    if (!originAllowed(options.allowedOrigins, request.headers.get("origin"))) {
      return new Response("origin not allowed\n", { status: 403 });
    }
    // read before the upgrade: reading the request after it throws "Request closed"
    const token = tokenFromRequest(request);
    const upgraded = upgradeOf(request, options.idleTimeoutSeconds);
    if (typeof upgraded === "string") {
      return new Response(`malformed WebSocket upgrade: ${upgraded}\n`, { status: 400 });
    }
    const { socket, response } = upgraded;
    cap.hold(socket);
    // Started before the handshake (which follows the 101 returned below) so verification
    // overlaps it; failures close after it.
    const principal = token === null
      ? Promise.reject(new AuthError("missing", "no token"))
      : deps.verifier.verify(token);
    principal.catch(() => {});
    // Every line about this socket carries its id; never the token or frame contents.
    const connectionId = crypto.randomUUID();
    // Frames a client sends before its token is checked are taken in as they come, by the
    // intake the connection goes on with, and wait here in order: only the frames its queue
    // would hold keep their contents (the rest wait as their answers), and at most as many as
    // the connection takes before it closes the socket for flooding.
    const intake = new FrameIntake(connectionDeps);
    const early: Taken[] = [];
    /**
     * Set once the socket is refused for what it sent before its token was checked: it is
     * closing, and is never taken in (it would hold a place of its user's, and a connection, for
     * as long as its client leaves the close unanswered).
     */
    let refused = false;
    /** Closes a socket that never gets a connection; `reason` is always our own words. */
    const refuse = (code: number, reason: string) => {
      refused = true;
      log.debug("socket refused", { connection_id: connectionId, code, reason });
      socket.onmessage = null;
      connectionDeps.closeSocket(socket, code, reason);
    };
    socket.onmessage = (event) => {
      const taken = intake.take(event.data);
      if (taken.to === "close") return refuse(taken.code, taken.reason);
      if (early.length >= earlyFrameLimit(options.limits)) {
        return refuse(CloseCode.tooMany, "flooding");
      }
      early.push(taken);
    };
    socket.onopen = async () => {
      // runs once: its listener need not stay with the socket for its whole life
      socket.onopen = null;
      let verified;
      try {
        verified = await principal;
      } catch (error) {
        if (error instanceof AuthError) return refuse(CloseCode.tokenInvalid, "invalid token");
        // a key set that cannot be fetched is no fault of the token: 1013, try again later
        if (!(error instanceof ChatError)) deps.onError(error, "token check");
        return refuse(closeCodeFor(error), "cannot check the token now");
      }
      if (refused) return;
      if (connections.draining) return refuse(CloseCode.restarting, "server shutting down");
      // an unknown chat id of the wrong shape is as unknown as any other
      if (endpoint.kind === "chat" && !UUID_PATTERN.test(endpoint.chatId)) {
        return refuse(CloseCode.forbidden, "forbidden");
      }
      if (!connections.reserve(verified.userId)) {
        return refuse(CloseCode.tooMany, "too many connections");
      }
      const connection = new Connection(
        socket,
        connectionId,
        verified,
        endpoint,
        connectionDeps,
        intake,
      );
      if (!connection.closed) {
        connections.add(connection);
        log.debug("socket opened", {
          connection_id: connectionId,
          endpoint: endpoint.kind,
          user_id: verified.userId,
          ...(endpoint.kind === "chat" ? { chat_id: endpoint.chatId } : {}),
        });
      }
      for (const taken of early.splice(0)) connection.takeIn(taken);
    };
    return response;
  };
}

/**
 * The socket and its 101 answer, or why the request is no WebSocket handshake: Deno refuses one
 * that lacks `Connection: Upgrade` or `Sec-WebSocket-Key` with a TypeError, whose message names
 * the header in its own words (never the request's). That is the client's error, not ours.
 */
function upgradeOf(request: Request, idleTimeout: number) {
  try {
    return Deno.upgradeWebSocket(request, { idleTimeout });
  } catch (error) {
    if (error instanceof TypeError) return error.message;
    throw error;
  }
}
