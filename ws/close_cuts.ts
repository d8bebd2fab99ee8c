import { logger } from "../observability/log.ts";

/** What of Deno's internals a cut needs: closing a resource by its id. */
interface ResourceTable {
  tryClose(rid: number): void;
}

/**
 * Deno's own resource table, where a WebSocket's connection is closed; undefined when this Deno
 * has none where it was (then nothing is cut, and a warning says so once).
 */
function resourceTable(): ResourceTable | undefined {
  // `Deno.internal` is a symbol Deno's types do not declare
  const key = Reflect.get(Deno, "internal");
  const internal = typeof key === "symbol" ? Reflect.get(Deno, key) : undefined;
  const core = typeof internal === "object" && internal !== null
    ? Reflect.get(internal, "core")
    : undefined;
  const tryClose = typeof core === "object" && core !== null
    ? Reflect.get(core, "tryClose")
    : undefined;
  if (typeof tryClose !== "function") return undefined;
  return { tryClose: (rid) => Reflect.apply(tryClose, core, [rid]) };
}

/** The resource id Deno keeps on a WebSocket (its `[[rid]]` slot); undefined when it has none. */
function resourceIdOf(socket: WebSocket): number | undefined {
  const slot = Object.getOwnPropertySymbols(socket).find((symbol) =>
    symbol.description === "[[rid]]"
  );
  const rid = slot === undefined ? undefined : Reflect.get(socket, slot);
  return typeof rid === "number" ? rid : undefined;
}

/**
 * Closes sockets for the server, and cuts the connection of one whose client has not answered
 * the close frame within `graceMs`. Deno keeps a socket it closed in CLOSING until its client
 * answers (denoland/deno#27924), and stops its idle timeout at the close: a client that never
 * answers (its network gone, or one that means to) would keep the connection, its descriptor,
 * its place of WS_MAX_SOCKETS and of its user, and a slow reader's unsent frames for as long
 * as it likes; anyone, without a token, could fill the instance so. A cut socket gets its
 * `close` event as one whose client answered does. One timer per socket waiting, cleared at its
 * `close` event.
 */
export function createCloseCuts(graceMs: number) {
  const log = logger("ws");
  const waiting = new Map<WebSocket, ReturnType<typeof setTimeout>>();
  let warned = false;

  function cut(socket: WebSocket): void {
    const timer = waiting.get(socket);
    if (timer !== undefined) clearTimeout(timer);
    waiting.delete(socket);
    if (socket.readyState === WebSocket.CLOSED) return;
    const table = resourceTable();
    const rid = resourceIdOf(socket);
    if (table && rid !== undefined) return table.tryClose(rid);
    if (warned) return;
    warned = true;
    log.warning(
      "cannot cut a WebSocket whose client leaves the close unanswered on this Deno; it is held until its connection ends",
    );
  }

  return {
    /** Closes `socket` with `code`; its connection is cut unless its client answers in time. */
    close(socket: WebSocket, code: number, reason: string): void {
      try {
        socket.close(code, reason);
      } catch {
        // already closing
      }
      if (socket.readyState === WebSocket.CLOSED || waiting.has(socket)) return;
      waiting.set(socket, setTimeout(() => cut(socket), graceMs));
      socket.addEventListener("close", () => {
        clearTimeout(waiting.get(socket));
        waiting.delete(socket);
      }, { once: true });
    },
    /** Cuts at once every socket still waiting for its client's answer (a shutdown's end). */
    cutAll(): void {
      for (const socket of [...waiting.keys()]) cut(socket);
    },
  };
}

export type CloseCuts = ReturnType<typeof createCloseCuts>;
