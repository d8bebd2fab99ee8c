import assert from "node:assert/strict";
import { openRawWebSocket } from "../tests/support/raw_websocket.ts";
import { within } from "../tests/support/wait.ts";
import { createCloseCuts } from "./close_cuts.ts";

/** A server whose sockets are closed with 4401 through `cuts` as soon as they open. */
function serveClosing(cuts: ReturnType<typeof createCloseCuts>) {
  const closed: Array<Promise<void>> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    closed.push(new Promise((resolve) => socket.addEventListener("close", () => resolve())));
    socket.onopen = () => cuts.close(socket, 4401, "invalid token");
    return response;
  });
  return { server, closed };
}

Deno.test("createCloseCuts() cuts a socket whose client leaves the close unanswered, once the grace is over", async () => {
  const cuts = createCloseCuts(300);
  const { server, closed } = serveClosing(cuts);
  try {
    await using silent = await openRawWebSocket(server.addr.port, "/");
    assert.equal(await silent.closeFrame(), 4401);
    // the close event comes though the client never answered: its connection was cut
    await within(closed[0]!, 5_000, "the close event of the socket cut");
    assert.equal(await silent.closed(5_000), 4401);
  } finally {
    await server.shutdown();
  }
});

Deno.test("createCloseCuts() leaves alone a socket whose client answers, and cutAll() cuts at once", async () => {
  const cuts = createCloseCuts(60_000);
  const { server, closed } = serveClosing(cuts);
  try {
    // a client that answers the close: no timer is left behind (the sanitizers would say)
    const answering = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
    const answered = new Promise<number>((resolve) => answering.onclose = (e) => resolve(e.code));
    assert.equal(await answered, 4401);
    await within(closed[0]!, 5_000, "the close event of the socket answered");
    // one that does not answer waits for its grace, unless everything is cut
    await using silent = await openRawWebSocket(server.addr.port, "/");
    assert.equal(await silent.closeFrame(), 4401);
    cuts.cutAll();
    await within(closed[1]!, 5_000, "the close event of the socket cut");
  } finally {
    await server.shutdown();
  }
});
