/**
 * The connection's lifecycle against a scripted server: the backoff between attempts, and
 * what `close()` leaves behind.
 */
import assert from "node:assert/strict";
import { openScriptedClient, scriptedServer } from "../tests/support/scripted_socket.ts";
import { historyPage, storedMessage } from "../tests/support/stored_messages.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import { freePort } from "../tests/support/free_port.ts";
import { within } from "../tests/support/wait.ts";
import { ClientClosedError, createChatClient, RequestError, RequestTimeoutError } from "./mod.ts";

const X = "00000000-0000-4000-8000-00000000000a";

Deno.test("after 4429 the delay grows with the 4429s in a row, not with failures before the socket opened", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, events, server } = scripted;
  const retries = async () => {
    const status = await events.next("status", (next) => next.state === "reconnecting");
    return [status.attempt, status.retryInMs];
  };
  const failed: unknown[] = [];
  for (let index = 0; index < 5; index++) {
    (await server.socket(index)).serverClose(1006);
    failed.push(await retries());
  }
  assert.deepEqual(failed, [[1, 1], [2, 2], [3, 4], [4, 8], [5, 16]]);

  // then connections that last (for hours, say), each closed with 4429
  const flooded: unknown[] = [];
  for (const index of [5, 6]) {
    const socket = await server.socket(index);
    socket.push(historyPage(X, [1]));
    await client.ready();
    assert.equal(client.status.attempt, 0);
    socket.serverClose(4429, "too many connections");
    flooded.push(await retries());
  }
  assert.deepEqual(flooded, [[1, 1], [2, 2]]);
});

Deno.test("close() while the token function is pending, which then fails, leaves no retry behind", async () => {
  const token = Promise.withResolvers<string>();
  await using scripted = openScriptedClient({ chatId: X, token: () => token.promise });
  await scripted.client.close();
  token.reject(new Error("the token service is down"));
  // the client's own handler of the rejection runs first
  await token.promise.catch(() => {});

  // no "reconnecting" after "closed": no retry timer either (it would keep a process alive)
  assert.deepEqual(scripted.events.all("status").map((status) => status.state), ["closed"]);
  assert.equal(scripted.client.status.state, "closed");
  assert.equal(scripted.server.sockets.length, 0);
});

Deno.test("close() from a status listener as a retry is announced leaves no retry to keep a process alive", async () => {
  // a program that gives up once its server is gone; the next attempt would be a minute away
  const program = `
    import { createChatClient } from ${JSON.stringify(new URL("./mod.ts", import.meta.url).href)};
    const client = createChatClient({
      url: "http://127.0.0.1:${freePort()}",
      token: "t",
      backoff: { initialMs: 60_000, jitter: 0 },
    });
    client.on("status", (status) => {
      if (status.state === "reconnecting") void client.close();
    });
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", program],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const { code } = await within(child.output(), 15_000, "the program to end once closed");
    assert.equal(code, 0);
  } finally {
    try {
      child.kill();
    } catch {
      // it ended
    }
  }
});

Deno.test("frames that come after close(), before the close event, are dropped", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const socket = await scripted.server.socket(0);
  const closing = scripted.client.close();
  // Deno's WebSocket still delivers frames while it is CLOSING
  assert.equal(socket.readyState, 2);
  socket.push(historyPage(X, [1]));
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 2) });
  await closing;

  assert.deepEqual(scripted.events.all("status").map((status) => status.state), ["closed"]);
  assert.equal(scripted.client.status.state, "closed");
  assert.deepEqual(scripted.events.all("latest_chat"), []);
  assert.deepEqual(scripted.events.all("chat_message"), []);
});

Deno.test("a WebSocket constructor that throws is retried after a backoff, and the request then settles", async () => {
  let refusals = 1;
  const scripted = scriptedServer();
  await using client = createChatClient({
    url: "https://chat.example",
    token: "t",
    chatId: X,
    backoff: { initialMs: 1, maxMs: 64, jitter: 0 },
    webSocket: (url) => {
      // a browser refuses some sockets outright: a blocked port, ws:// from an https page
      if (refusals-- > 0) throw new DOMException("The operation is insecure.", "SecurityError");
      return scripted.webSocket(url);
    },
  });
  // the first attempt is made (and refused) before createChatClient returns
  const retry = client.status;
  assert.equal(retry.state, "reconnecting");
  assert.match(retry.reason ?? "", /SecurityError/);
  const unread = client.request({ action: "unread_message" });

  const socket = await scripted.socket(0);
  socket.push(historyPage(X, [1]));
  await client.ready();
  const asked = await scripted.written(socket, "unread_message");
  const answer = { type: "unread_messages" as const, chat_id: X, count: 0, messages: [] };
  socket.answer(asked, answer);
  assert.deepEqual(await unread, answer);
});

Deno.test("createChatClient() throws at once for a url it cannot make a socket URL of", () => {
  for (const url of ["localhost:8000", "not a url", "ftp://chat.example"]) {
    assert.throws(
      () => createChatClient({ url, token: "t", chatId: X, webSocket: scriptedServer().webSocket }),
      TypeError,
      url,
    );
  }
});

Deno.test("close() resolves after closeTimeoutMs when the server never answers the close frame", async () => {
  // a real Deno WebSocket: Deno's own has no timeout on the closing handshake
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.send(JSON.stringify(historyPage(X, [1])));
    return response;
  });
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: server.addr.port });
  const socketGone = Promise.withResolvers<void>();
  const client = createChatClient({
    url: `http://127.0.0.1:${proxy.port}`,
    token: "t",
    chatId: X,
    closeTimeoutMs: 100,
    webSocket: (url) => {
      const socket = new WebSocket(url);
      socket.addEventListener("close", () => socketGone.resolve());
      return socket;
    },
  });
  await client.ready();

  // the server hangs, or the network is gone: the client's close frame gets nowhere
  proxy.stall("upstream");
  await within(client.close(), 2_000, "close()");
  assert.equal(client.status.state, "closed");

  // the connection ends for real at last, and the socket with it (nothing leaks)
  await proxy.cut();
  await within(socketGone.promise, 2_000, "the socket's close event");
});

Deno.test("close() from a chat_message listener: no event follows the closed status", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, server } = scripted;
  const log: string[] = [];
  const closed = Promise.withResolvers<void>();
  client.on("status", (status) => log.push(`status ${status.state}`));
  client.on("chat_message", ({ message }) => {
    log.push(`chat_message #${message.seq}`);
    if (message.seq === 2) closed.resolve(client.close());
  });
  const socket = await scripted.accept(historyPage(X, [1]));
  // #4 shows a gap; the page that fills it releases #2, #3 and #4 in one go
  socket.push({ type: "chat_message", chat_id: X, message: storedMessage(X, 4) });
  const fill = await server.written(socket, "load_latest_chat");
  socket.answer(fill, historyPage(X, [2, 3, 4]));

  await within(closed.promise, 2_000, "close() called from the listener");
  assert.deepEqual(log, ["status open", "chat_message #2", "status closed"]);
});

/** A send_message of a video too large for the server's frame limit. */
function largeVideo() {
  const video = "A".repeat(100_000);
  return {
    action: "send_message" as const,
    receiver_id: "vend-1",
    media_type: "video",
    video,
  } as const;
}

function textMessage(content: string) {
  return {
    action: "send_message" as const,
    receiver_id: "vend-1",
    media_type: "text",
    content,
  } as const;
}

/** Accepts the client's next socket, and stores the send it writes again there as #2. */
async function resentAndStored(
  scripted: ReturnType<typeof openScriptedClient>,
  send: Promise<{ seq: number }>,
): Promise<string> {
  const next = await scripted.server.socket(1);
  next.push(historyPage(X, [1]));
  const again = await scripted.server.written(next, "send_message");
  const message = storedMessage(X, 2, { content: again.content });
  next.push({ type: "ack", request_id: again.request_id, action: "send_message", message });
  return `${again.content} stored as #${(await send).seq}`;
}

Deno.test("after 1009 the largest send still waiting is rejected as payload_too_large, the rest resent", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  const video = client.request(largeVideo());
  const text = client.request(textMessage("and this one?"));
  await server.written(socket, "send_message");
  // the outbox goes one send at a time: the text waits for the video's answer
  assert.deepEqual(socket.sent.map((frame) => frame.media_type), ["video"]);
  socket.serverClose(1009, "frame too large");

  await assert.rejects(
    video,
    (error) => error instanceof RequestError && error.code === "payload_too_large",
  );
  assert.equal(await resentAndStored(scripted, text), "and this one? stored as #2");
});

Deno.test("a send larger than any server reads (64 MiB) is rejected as payload_too_large without being written", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  // Deno drops such a frame with 1006, not 1009: written, it would be resent on every connection
  const huge = { ...largeVideo(), video: "A".repeat(64 * 1024 * 1024) };
  await within(
    assert.rejects(
      client.request(huge),
      (error) => error instanceof RequestError && error.code === "payload_too_large",
    ),
    5_000,
    "the refusal of the send",
  );
  const text = client.request(textMessage("and a small one"));
  const written = await scripted.server.written(socket, "send_message");
  assert.equal(written.content, "and a small one");
  assert.deepEqual(socket.sent.map((frame) => frame.media_type), ["text"]);
  const message = storedMessage(X, 2, { content: written.content });
  socket.push({ type: "ack", request_id: written.request_id, action: "send_message", message });
  assert.equal((await text).seq, 2);
  assert.equal(client.stats.reconnects, 0);
});

Deno.test("after 1009 a small send is resent when the larger send that caused it had given up", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  // a big upload on a slow uplink outlasts its timeout; the server says 1009 once it has it all
  socket.bufferedAmount = 1 << 16;
  const video = client.request(largeVideo(), { timeoutMs: 20 });
  await server.written(socket, "send_message");
  // still leaving when its timeout comes: the socket is slow, not silent
  socket.bufferedAmount -= 1 << 10;
  const text = client.request(textMessage("still there?"));
  await server.written(socket, "send_message");
  await assert.rejects(video, RequestTimeoutError);
  socket.serverClose(1009, "frame too large");

  assert.equal(await resentAndStored(scripted, text), "still there? stored as #2");
});

Deno.test("an upload still leaving whole when its timeout comes (Deno's bufferedAmount falls by whole frames) keeps its socket, and rejects", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  const video = client.request(largeVideo(), { timeoutMs: 50 });
  const written = await server.written(socket, "send_message");
  // a slow uplink: the frame is leaving, and counts whole until all of it has left
  socket.bufferedAmount = new TextEncoder().encode(JSON.stringify(written)).byteLength;

  await within(assert.rejects(video, RequestTimeoutError), 5_000, "the upload's timeout");
  assert.equal(client.status.state, "open");
  assert.equal(server.sockets.length, 1, "the socket is kept");
});

Deno.test("a socket whose first frame does not come within connectTimeoutMs is left, and the next one takes the outbox", async () => {
  // a real Deno WebSocket: the first connection is taken in but its page never comes (a hung
  // server, or a network gone silent just after the handshake)
  const sockets: WebSocket[] = [];
  const firstClosed = Promise.withResolvers<number>();
  const sent = Promise.withResolvers<string>();
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    const index = sockets.push(socket) - 1;
    if (index === 0) socket.onclose = (event) => firstClosed.resolve(event.code);
    else socket.onopen = () => socket.send(JSON.stringify(historyPage(X, [1])));
    socket.onmessage = (event) => sent.resolve(`on socket #${index}: ${event.data}`);
    return response;
  });
  await using client = createChatClient({
    url: `http://127.0.0.1:${server.addr.port}`,
    token: "t",
    chatId: X,
    connectTimeoutMs: 200,
    backoff: { initialMs: 1, jitter: 0 },
  });
  const statuses: string[] = [];
  client.on("status", (status) => statuses.push(`${status.state} ${status.code ?? ""}`.trim()));
  void client.request({ ...textMessage("waited"), client_id: "c-1" }).catch(() => {});

  await within(client.ready(), 2_000, "a connection that sends its first frame");
  assert.equal(await within(firstClosed.promise, 2_000, "the silent socket's close"), 1000);
  assert.match(await within(sent.promise, 2_000, "the send"), /^on socket #1: .*"client_id":"c-1"/);
  assert.deepEqual(statuses, ["reconnecting 1006", "open"]);
});

Deno.test("a handshake the server never answers is given up after connectTimeoutMs, and tried again", async () => {
  // the server takes the TCP connection and never answers the upgrade: Deno's WebSocket has no
  // time limit of its own on the handshake
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken: Deno.Conn[] = [];
  const second = Promise.withResolvers<void>();
  const accepting = (async () => {
    for await (const conn of listener) if (taken.push(conn) === 2) second.resolve();
  })();
  const client = createChatClient({
    url: `http://127.0.0.1:${listener.addr.port}`,
    token: "t",
    chatId: X,
    connectTimeoutMs: 100,
    backoff: { initialMs: 1, jitter: 0 },
  });
  try {
    await within(second.promise, 2_000, "a second attempt");
    assert.equal(client.status.state, "reconnecting");
    assert.equal(client.status.code, 1006);
  } finally {
    await client.close();
    for (const conn of taken) conn.close();
    listener.close();
    await accepting;
  }
});

Deno.test("connectTimeoutMs 0, Infinity or past what setTimeout can wait puts no limit on the first frame", async () => {
  for (const connectTimeoutMs of [0, Infinity, 2 ** 31]) {
    await using scripted = openScriptedClient({ chatId: X, connectTimeoutMs });
    const socket = await scripted.server.socket(0);
    // a timer of 0 (setTimeout takes Infinity as 0, 2 ** 31 as 1) would have fired by now
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.push(historyPage(X, [1]));
    await within(scripted.client.ready(), 1_000, `ready with connectTimeoutMs ${connectTimeoutMs}`);
    assert.equal(scripted.server.sockets.length, 1, `one socket with ${connectTimeoutMs}`);
  }
});

Deno.test("a token function that never answers is given up after connectTimeoutMs and asked again", async () => {
  let asked = 0;
  // the first ask hangs (a token service that took the request and went silent)
  const token = () => ++asked === 1 ? new Promise<string>(() => {}) : Promise.resolve("token-2");
  await using scripted = openScriptedClient({ chatId: X, token, connectTimeoutMs: 50 });
  const status = await scripted.events.next("status", (next) => next.state === "reconnecting");
  assert.match(status.reason ?? "", /no token/);
  await scripted.accept(historyPage(X, [1]));
  assert.equal(asked, 2);
  assert.equal(scripted.client.status.state, "open");
});

Deno.test("stats.resent counts sends written again, not sends lost with a socket that were never written again", async () => {
  await using scripted = openScriptedClient({ chatId: X });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  // a restart (1012): the send in flight is written again on the next socket
  const first = client.request(textMessage("first"));
  await server.written(socket, "send_message");
  socket.serverClose(1012, "restarting");
  assert.equal(await resentAndStored(scripted, first), "first stored as #2");
  assert.equal(client.stats.resent, 1);

  // an operator's disconnect (4408) stops the client: the send in flight is not written again
  const next = server.sockets[1]!;
  const second = client.request(textMessage("second"));
  await server.written(next, "send_message");
  next.serverClose(4408, "disconnected");
  await assert.rejects(second, ClientClosedError);
  await events.next("status", (status) => status.state === "closed");
  assert.equal(server.sockets.length, 2);
  assert.equal(client.stats.resent, 1, "no send was written again after the 4408");
});

Deno.test("stats.resent does not count a send lost with its socket when the client is closed before the next one", async () => {
  await using scripted = openScriptedClient({ chatId: X, backoff: { initialMs: 60_000 } });
  const { client, events, server } = scripted;
  const socket = await scripted.accept(historyPage(X, [1]));
  const send = client.request(textMessage("lost"));
  await server.written(socket, "send_message");
  socket.serverClose(1012, "restarting");
  await events.next("status", (status) => status.state === "reconnecting");
  await client.close();
  await assert.rejects(send, ClientClosedError);
  assert.equal(server.sockets.length, 1);
  assert.equal(client.stats.resent, 0);
});
