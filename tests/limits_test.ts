import assert from "node:assert/strict";
import { configureLogging } from "../observability/log.ts";
import { SOCKET_CAP_LEFT, SOCKET_CAP_REACHED } from "../ws/socket_cap.ts";
import { openRawWebSocket } from "./support/raw_websocket.ts";
import { startCluster } from "./support/service.ts";
import { within } from "./support/wait.ts";
import { TestSocket } from "./support/ws_client.ts";

Deno.test("a socket over its rate gets rate_limited, and one that keeps flooding is closed 4429", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_RATE_PER_SECOND: "0.001", WS_RATE_BURST: "3", WS_FLOOD_LIMIT: "5" },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await cluster.openChat("alice", chat.id);
  await alice.nextOfType("unread_messages");
  for (let i = 0; i < 3; i++) alice.send({ action: "ping" });
  const refused = await alice.request({ action: "ping" });
  assert.equal(refused.type, "error");
  assert.equal(refused.code, "rate_limited");
  // strikes 2 to 5: the fifth refused frame in a row closes the socket. (Deno drops, rather
  // than closes cleanly, a socket whose peer sends on after the server's close frame, so the
  // test stops at the limit to see the close code.)
  for (let i = 0; i < 4; i++) alice.send({ action: "ping" });
  assert.equal((await alice.closed).code, 4429);
});

Deno.test("a user over the socket limit is closed 4429, others are not", async () => {
  await using cluster = await startCluster({ nats: false, env: { WS_MAX_SOCKETS_PER_USER: "2" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const first = await cluster.openChat("alice", chat.id);
  const second = await cluster.openChat("alice", chat.id);
  await first.nextOfType("unread_messages");
  await second.nextOfType("unread_messages");
  const third = await cluster.openChat("alice", chat.id);
  assert.equal((await third.closed).code, 4429);
  const vendor = await cluster.openChat("acme", chat.id);
  await vendor.nextOfType("latest_chat");
  second.close();
  await second.closed;
  const again = await cluster.openChat("alice", chat.id);
  await again.nextOfType("latest_chat");
});

Deno.test("a frame over the maximum closes the socket with 1009", async () => {
  await using cluster = await startCluster({ nats: false, env: { MAX_FRAME_BYTES: "1000" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await cluster.openChat("alice", chat.id);
  await alice.nextOfType("unread_messages");
  const ok = await alice.request({
    action: "send_message",
    receiver_id: "acme",
    media_type: "text",
    content: "x".repeat(500),
  });
  assert.equal(ok.type, "ack");
  alice.send({
    action: "send_message",
    receiver_id: "acme",
    media_type: "text",
    content: "x".repeat(2000),
  });
  assert.equal((await alice.closed).code, 1009);
});

Deno.test("the frame maximum counts UTF-8 bytes: multi-byte text under it in characters but over it in bytes closes 1009", async () => {
  await using cluster = await startCluster({ nats: false, env: { MAX_FRAME_BYTES: "3000" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await cluster.openChat("alice", chat.id);
  await alice.nextOfType("unread_messages");
  /** A send_message frame of exactly `bytes` UTF-8 bytes, mostly three-byte characters. */
  const frameOf = (bytes: number, request_id: string) => {
    const frame = (content: string) => ({
      action: "send_message",
      receiver_id: "acme",
      media_type: "text",
      content,
      request_id,
    });
    const bare = new TextEncoder().encode(JSON.stringify(frame(""))).length;
    const euros = Math.floor((bytes - bare) / 3);
    const text = JSON.stringify(frame("€".repeat(euros) + "x".repeat(bytes - bare - euros * 3)));
    assert.equal(new TextEncoder().encode(text).length, bytes);
    assert.ok(text.length < 1100, "well under the maximum in UTF-16 code units");
    return text;
  };
  alice.send(frameOf(3000, "at-the-maximum"));
  const served = await alice.next((frame) => frame.request_id === "at-the-maximum", "its ack");
  assert.equal(served.type, "ack");
  alice.send(frameOf(3001, "one-byte-over"));
  assert.equal((await within(alice.closed, 5_000, "the close")).code, 1009);
});

Deno.test("a socket from an origin not allowed is refused at the upgrade", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { ALLOWED_ORIGINS: "https://shop.example" },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const token = await cluster.token("alice");
  const url = `${cluster.main.wsUrl}/v1/ws/chat/${chat.id}/`;
  await assert.rejects(TestSocket.open(url, { token, origin: "https://evil.example" }));
  await using allowed = await TestSocket.open(url, { token, origin: "https://shop.example" });
  await allowed.nextOfType("latest_chat");
});

/** Open sockets of an instance, from its own metrics. */
async function openSockets(httpUrl: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("chat_ws_open_sockets{")) total += Number(line.split(" ").at(-1));
  }
  return total;
}

Deno.test("a reader that stops reading is closed with 1013 instead of buffering without bound", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: {
      WS_MAX_BUFFERED_BYTES: "65536",
      WS_RATE_PER_SECOND: "100000",
      WS_RATE_BURST: "100000",
    },
  });
  const chat = await cluster.main.service.chat.createChat("talker", "sleeper");
  // a client that completes the handshake and then never reads again
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: cluster.main.service.port });
  const token = await cluster.token("sleeper");
  await conn.write(new TextEncoder().encode(
    `GET /v1/ws/chat/${chat.id}/?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${btoa("0123456789abcdef")}\r\n` +
      "Sec-WebSocket-Version: 13\r\n\r\n",
  ));
  await using talker = await cluster.openChat("talker", chat.id);
  await talker.nextOfType("unread_messages");
  assert.equal(await openSockets(cluster.main.httpUrl), 2);
  // every message sends the sleeper a chat_message and an unread push of up to 50 messages
  let sent = 0;
  while (await openSockets(cluster.main.httpUrl) === 2) {
    assert.ok(++sent <= 2_000, "the slow reader was never let go");
    const ack = await talker.request({
      action: "send_message",
      receiver_id: "sleeper",
      media_type: "text",
      content: "x".repeat(3_000),
    });
    assert.equal(ack.type, "ack");
  }
  // the talker was not held up; once the sleeper reads again, its stream ends in a 1013 close
  const reader = conn.readable.getReader();
  const closeFrame = (async () => {
    let tail = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      const joined = new Uint8Array(tail.length + value.length);
      joined.set(tail);
      joined.set(value, tail.length);
      // a server frame: 0x88 (FIN, close), length, then the code 1013 = 0x03f5
      for (let i = 0; i + 3 < joined.length; i++) {
        if (joined[i] === 0x88 && joined[i + 2] === 0x03 && joined[i + 3] === 0xf5) return true;
      }
      tail = joined.slice(-4);
    }
  })();
  try {
    assert.equal(await within(closeFrame, 10_000, "the close frame"), true);
  } finally {
    await reader.cancel();
  }
});

Deno.test("a socket the server closed keeps its user's place until its client answers the close or goes", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_MAX_SOCKETS_PER_USER: "1", MAX_FRAME_BYTES: "65536" },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const token = await cluster.token("alice");
  // a client that stops answering (and could hold the buffer of a slow reader): Deno keeps the
  // connection until the client answers the close frame or the connection ends
  const lost = await openRawWebSocket(
    cluster.main.service.port,
    `/v1/ws/chat/${chat.id}/?token=${token}`,
  );
  await lost.received((text) => text.startsWith('{"type":"latest_chat"'), "latest_chat");
  const oversized = JSON.stringify({ action: "ping", padding: "x".repeat(70_000) });
  await lost.sendFrame(0x1, new TextEncoder().encode(oversized));
  assert.equal(await lost.closeFrame(), 1009);
  // its connection is still held: the user's one place with it
  await using second = await cluster.openChat("alice", chat.id);
  assert.equal((await within(second.closed, 5_000, "the second socket's close")).code, 4429);
  await lost[Symbol.asyncDispose]();
  await using again = await cluster.openChat("alice", chat.id);
  await again.nextOfType("latest_chat");
});

Deno.test("a client churning sockets at WS_MAX_SOCKETS writes a few lines, not two per socket", async () => {
  const logged: string[] = [];
  const decoder = new TextDecoder();
  await using _logging = await configureLogging("info", {
    write: (bytes) => logged.push(decoder.decode(bytes)),
  });
  await using cluster = await startCluster({ nats: false, env: { WS_MAX_SOCKETS: "1" } });
  const url = `${cluster.main.wsUrl}/v1/ws/chats/`;
  const token = await cluster.token("alice");
  /** A socket once the instance has a place again (the last one's close is heard a bit later). */
  const openOnceFree = async () => {
    const deadline = Date.now() + 5_000;
    while (true) {
      try {
        return await TestSocket.open(url, { token });
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
    }
  };
  for (let round = 0; round < 30; round++) {
    const holding = await openOnceFree();
    // refused with 503, no token needed: the upgrade is refused before the token is read
    await assert.rejects(TestSocket.open(url), /socket error/);
    holding.close();
    await holding.closed;
  }
  const lines = logged.join("").split("\n").filter(Boolean).map((line) => JSON.parse(line));
  const capLines = lines.filter((line) =>
    line.message === SOCKET_CAP_REACHED || line.message === SOCKET_CAP_LEFT
  );
  assert.ok(capLines.length > 0, "the cap is logged");
  assert.ok(capLines.length <= 20, `${capLines.length} lines for 30 sockets refused at the cap`);
});

Deno.test("sockets refused without a token whose clients never answer the close are cut after WS_IDLE_TIMEOUT_SECONDS, and give back their WS_MAX_SOCKETS places", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_MAX_SOCKETS: "3", WS_IDLE_TIMEOUT_SECONDS: "1" },
  });
  // no token needed: each is refused with 4401, and its client leaves the close unanswered
  const silent = [];
  for (let i = 0; i < 3; i++) {
    const socket = await openRawWebSocket(cluster.main.service.port, "/v1/ws/chats/?token=none");
    silent.push(socket);
    assert.equal(await socket.closeFrame(), 4401);
  }
  try {
    const url = `${cluster.main.wsUrl}/v1/ws/chats/`;
    const token = await cluster.token("alice");
    const deadline = Date.now() + 10_000;
    let served: TestSocket | undefined;
    while (!served) {
      try {
        served = await TestSocket.open(url, { token });
      } catch (error) {
        assert.ok(Date.now() < deadline, `the instance is still full: ${error}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    await using _served = served;
    await served.nextOfType("chats");
  } finally {
    for (const socket of silent) await socket[Symbol.asyncDispose]();
  }
});

Deno.test("a frame slower to arrive than WS_IDLE_TIMEOUT_SECONDS ends its socket with 1001: its client cannot answer the ping in the middle of it", async () => {
  await using cluster = await startCluster({ nats: false, env: { WS_IDLE_TIMEOUT_SECONDS: "1" } });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const token = await cluster.token("alice");
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: cluster.main.service.port });
  await conn.write(new TextEncoder().encode(
    `GET /v1/ws/chat/${chat.id}/?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${btoa("0123456789abcdef")}\r\n` +
      "Sec-WebSocket-Version: 13\r\n\r\n",
  ));
  // one text frame of 64 KiB (mask all zeros), written a slice every 100 ms: 4 s in all
  const length = 64 * 1024;
  const header = new Uint8Array([0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  new DataView(header.buffer).setBigUint64(2, BigInt(length));
  const writing = (async () => {
    try {
      await conn.write(header);
      for (let sent = 0; sent < length; sent += length / 40) {
        await conn.write(new Uint8Array(length / 40).fill(0x20));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return "written whole";
    } catch {
      return "cut";
    }
  })();
  const closeCode = (async () => {
    const reader = conn.readable.getReader();
    let seen = new Uint8Array(0);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return null;
        const joined = new Uint8Array(seen.length + value.length);
        joined.set(seen);
        joined.set(value, seen.length);
        seen = joined;
        // a server frame: 0x88 (FIN, close), a length, then the code
        const at = seen.findIndex((byte, index) => byte === 0x88 && index + 3 < seen.length);
        if (at >= 0) return (seen[at + 2]! << 8) | seen[at + 3]!;
      }
    } catch {
      return null;
    } finally {
      reader.releaseLock();
    }
  })();
  assert.equal(await within(closeCode, 10_000, "the close frame"), 1001);
  assert.equal(await within(writing, 10_000, "the frame's end"), "cut");
});
