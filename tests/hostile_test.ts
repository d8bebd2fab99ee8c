/**
 * Hostile input at the socket, HTTP and RPC level: forged tokens, strings built to break
 * queries or terminals, frames no client library would send, and floods. Each gets the
 * contract's error or close code, and everyone else keeps being served. (Other people's ids
 * are in isolation_test.ts and media_http_test.ts, admin page tokens in admin_*_test.ts,
 * generated frames in fuzz_test.ts, limits in limits_test.ts.)
 */
import assert from "node:assert/strict";
import {
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  importPKCS8,
  type JWTPayload,
  SignJWT,
} from "jose";
import { failure, Status } from "./support/admin_client.ts";
import { openRawWebSocket } from "./support/raw_websocket.ts";
import { sample } from "./support/service_process.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { acked, joinAllChats, joinChat, refused, sendText, stillServes } from "./support/steps.ts";
import { within } from "./support/wait.ts";
import { type Frame, TestSocket } from "./support/ws_client.ts";

const ISSUER = "https://auth.shop.example";
const AUDIENCE = "chat";

const base64url = (value: unknown) =>
  btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");

/** Opens a socket with `token` and returns its close code; it must get no frame first. */
async function closeCodeWith(
  url: string,
  token: string,
  header = false,
): Promise<number> {
  await using socket = await TestSocket.open(url, { token, header });
  const { code } = await within(socket.closed, 5_000, `the close of ${url}`);
  assert.deepEqual(socket.frames, [], "no frame before the close");
  return code;
}

async function openSockets(cluster: TestCluster, instance = 0): Promise<number> {
  const response = await fetch(`${cluster.instances[instance]!.httpUrl}/metrics`);
  const text = await response.text();
  return sample(text, 'chat_ws_open_sockets{endpoint="chat"}') +
    sample(text, 'chat_ws_open_sockets{endpoint="chats"}');
}

Deno.test("forged, expired, early, misaddressed and oversized tokens are closed with 4401 on both endpoints and refused on media", async () => {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const pem = await exportSPKI(publicKey);
  await using cluster = await startCluster({
    nats: false,
    env: { JWT_SECRET: "", JWT_PUBLIC_KEY: pem, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const now = Math.floor(Date.now() / 1000);
  const claims: JWTPayload = { user_id: "alice", iss: ISSUER, aud: AUDIENCE, exp: now + 3600 };
  const signed = (payload: JWTPayload, header: Record<string, unknown> = {}) =>
    new SignJWT(payload).setProtectedHeader({ alg: "RS256", ...header }).sign(privateKey);

  // the key is good: a token it signed connects
  const valid = await signed(claims);
  await using bystander = await TestSocket.open(`${cluster.main.wsUrl}/v1/ws/chat/${chat.id}/`, {
    token: valid,
  });
  await bystander.nextOfType("unread_messages");

  const attacker = await generateKeyPair("RS256", { extractable: true });
  const ec = await generateKeyPair("ES256");
  // the right RSA key under another algorithm of its family
  const pss = await importPKCS8(await exportPKCS8(privateKey), "PS256");
  const [header, , signature] = valid.split(".");
  const { iss: _iss, ...withoutIssuer } = claims;
  const { aud: _aud, ...withoutAudience } = claims;
  const forged: Record<string, string> = {
    "alg none": `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`,
    "HS256 keyed with the public key's PEM": await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(pem)),
    "RS256 by another key": await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256" })
      .sign(attacker.privateKey),
    "another key embedded as jwk": await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", jwk: await exportJWK(attacker.publicKey) })
      .sign(attacker.privateKey),
    "another key's jku": await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", jku: "http://127.0.0.1:9/jwks.json", kid: "k" })
      .sign(attacker.privateKey),
    "ES256": await new SignJWT(claims).setProtectedHeader({ alg: "ES256" }).sign(ec.privateKey),
    "PS256 by the right key": await new SignJWT(claims)
      .setProtectedHeader({ alg: "PS256" })
      .sign(pss),
    "claims altered after signing": `${header}.${
      base64url({ ...claims, user_id: "acme" })
    }.${signature}`,
    "expired": await signed({ ...claims, exp: now - 120 }),
    "not valid before a future nbf": await signed({ ...claims, nbf: now + 120 }),
    "without exp": await signed({ user_id: "alice", iss: ISSUER, aud: AUDIENCE }),
    "another issuer": await signed({ ...claims, iss: "https://evil.example" }),
    "no issuer": await signed(withoutIssuer),
    "another audience": await signed({ ...claims, aud: "billing" }),
    "no audience": await signed(withoutAudience),
    "20 KB": await signed({ ...claims, padding: "x".repeat(20_000) }),
    "a user id that is not a string": await signed({ ...claims, user_id: { $ne: null } }),
    "an empty user id": await signed({ ...claims, user_id: "" }),
    "a refresh token (simplejwt token_type)": await signed({ ...claims, token_type: "refresh" }),
  };
  const chatUrl = `${cluster.main.wsUrl}/v1/ws/chat/${chat.id}/`;
  const chatsUrl = `${cluster.main.wsUrl}/v1/ws/chats/`;
  for (const [name, token] of Object.entries(forged)) {
    assert.equal(await closeCodeWith(chatUrl, token), 4401, `${name} in the query`);
    assert.equal(await closeCodeWith(chatUrl, token, true), 4401, `${name} in the header`);
    assert.equal(await closeCodeWith(chatsUrl, token), 4401, `${name} on /v1/ws/chats/`);
    const media = await fetch(`${cluster.main.httpUrl}/v1/media/${crypto.randomUUID()}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(media.status, 401, `${name} on media`);
    await media.body?.cancel();
  }
  await stillServes(bystander);
  assert.equal(await openSockets(cluster), 1, "refused sockets leave nothing behind");
});

/**
 * A cluster whose tokens are checked against a JWKS the test serves and holds back until
 * `releaseKeys()`: every token check waits for it meanwhile.
 */
async function clusterWithHeldKeys(env: Record<string, string> = {}) {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), alg: "RS256", kid: "k1", use: "sig" };
  const { promise: keysReleased, resolve: releaseKeys } = Promise.withResolvers<void>();
  let keyRequests = 0;
  const keyServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    keyRequests++;
    await keysReleased;
    return Response.json({ keys: [jwk] });
  });
  const cluster = await startCluster({
    nats: false,
    env: {
      JWT_SECRET: "",
      JWT_JWKS_URL: `http://127.0.0.1:${keyServer.addr.port}/jwks.json`,
      ...env,
    },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const tokenOf = (user: string) =>
    new SignJWT({ user_id: user, exp: Math.floor(Date.now() / 1000) + 3600 })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .sign(privateKey);
  return {
    cluster,
    chatUrl: async (user: string) =>
      `${cluster.main.wsUrl}/v1/ws/chat/${chat.id}/?token=${await tokenOf(user)}`,
    /** How often the key set was asked for. */
    keyRequests: () => keyRequests,
    releaseKeys,
    async [Symbol.asyncDispose]() {
      releaseKeys();
      await cluster[Symbol.asyncDispose]();
      await keyServer.shutdown();
    },
  };
}

/** Opens a bare socket; resolves once it is open. */
function openBare(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.onopen = () => resolve(socket);
    socket.onerror = () => reject(new Error(`could not open ${url}`));
  });
}

Deno.test("sockets their clients close while the token is still being checked leave no socket or slot behind", async () => {
  await using held = await clusterWithHeldKeys({ WS_MAX_SOCKETS_PER_USER: "2" });
  const aliceUrl = await held.chatUrl("alice");
  await within(
    Promise.all(Array.from({ length: 5 }, async () => {
      const socket = await openBare(aliceUrl);
      const closed = new Promise((resolve) => socket.onclose = resolve);
      socket.close();
      await closed;
    })),
    5_000,
    "the clients' closes",
  );
  assert.ok(held.keyRequests() >= 1, "the token checks were waiting for the key set");
  held.releaseKeys();
  // acme's check comes after alice's five: once acme is served, theirs have finished
  await using acme = await TestSocket.open(await held.chatUrl("acme"));
  await acme.nextOfType("unread_messages");
  assert.equal(await openSockets(held.cluster), 1, "only acme's socket is open");
  // both of alice's places are free
  await using first = await TestSocket.open(aliceUrl);
  await using second = await TestSocket.open(aliceUrl);
  await first.nextOfType("unread_messages");
  await second.nextOfType("unread_messages");
});

Deno.test("frames sent before the token is checked are bounded: a flood is closed 4429 and an oversized frame 1009 at once", async () => {
  await using held = await clusterWithHeldKeys({
    WS_RATE_BURST: "2",
    WS_FLOOD_LIMIT: "3",
    MAX_FRAME_BYTES: "65536",
  });
  const aliceUrl = await held.chatUrl("alice");
  const closeCode = (socket: WebSocket) =>
    within(
      new Promise<number>((resolve) => socket.onclose = (event) => resolve(event.code)),
      5_000,
      "the close, with the key set still held back",
    );
  // the connection would take two frames and close at the third it refuses: so does the intake
  // before the token is checked (a frame sent after the close would make Deno drop the socket)
  const flooding = await openBare(aliceUrl);
  const flooded = closeCode(flooding);
  for (let index = 0; index < 5; index++) flooding.send(JSON.stringify({ action: "ping" }));
  assert.equal(await flooded, 4429);
  const oversized = await openBare(aliceUrl);
  const tooLarge = closeCode(oversized);
  oversized.send(JSON.stringify({ action: "ping", padding: "x".repeat(70_000) }));
  assert.equal(await tooLarge, 1009);
  assert.ok(held.keyRequests() >= 1, "the token checks were waiting for the key set");
  // a socket that stays within the bounds is served once its token is checked
  const patient = await openBare(aliceUrl);
  patient.send(JSON.stringify({ action: "ping" }));
  const first = new Promise<string>((resolve) =>
    patient.onmessage = (event) => resolve(event.data)
  );
  held.releaseKeys();
  assert.match(await within(first, 5_000, "latest_chat"), /^\{"type":"latest_chat"/);
  patient.close();
});

Deno.test("a socket refused for its frames before the token is checked, whose client never answers the close, holds no place", async () => {
  await using held = await clusterWithHeldKeys({
    WS_MAX_SOCKETS_PER_USER: "1",
    MAX_FRAME_BYTES: "65536",
  });
  const aliceUrl = await held.chatUrl("alice");
  const { pathname, search } = new URL(aliceUrl);
  // a client that then lost its network: the close frame gets no answer, the connection stays
  await using lost = await openRawWebSocket(held.cluster.main.service.port, pathname + search);
  const oversized = JSON.stringify({ action: "ping", padding: "x".repeat(70_000) });
  await lost.sendFrame(0x1, new TextEncoder().encode(oversized));
  assert.equal(await lost.closeFrame(), 1009);
  assert.ok(held.keyRequests() >= 1, "the token check was waiting for the key set");
  held.releaseKeys();
  // the user's one place is free: their next socket is served
  await using again = await TestSocket.open(aliceUrl);
  await again.nextOfType("latest_chat");
  assert.equal(await openSockets(held.cluster), 1, "only the new socket is open");
});

Deno.test("NUL, SQL, escapes and lone surrogates in every string field get a contract answer, never internal, and storable text is stored verbatim", async () => {
  await using cluster = await startCluster({
    nats: false,
    grpc: true,
    env: { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" },
  });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  await using alice = await joinChat(cluster, "alice", chat.id);
  await using aliceAll = await joinAllChats(cluster, "alice");
  const mine = await sendText(alice, "acme", "mine");
  const hostile = [
    "'; drop table messages; --",
    "' or '1'='1",
    "\u0000",
    "nul \u0000 inside",
    "\u0007\u001b[2J\u001b]0;pwned\u0007\u202e\u200b",
    "lone \ud800 surrogate",
    "%00%27 ${7*7} {{7*7}} $1 \\x00 \\",
    "null",
    "🙂".repeat(300),
  ];
  const allowed = new Set(["invalid_payload", "not_found", "forbidden"]);
  const answer = async (socket: TestSocket, frame: Frame, field: string) => {
    const reply = await socket.request(frame);
    const label = `${frame.action}.${field} = ${JSON.stringify(frame[field])}`;
    if (reply.type === "error") assert.ok(allowed.has(reply.code), `${label}: ${reply.code}`);
    else assert.equal(reply.type, "ack", label);
    return reply;
  };
  for (const value of hostile) {
    const send = { action: "send_message", receiver_id: "acme", media_type: "text", content: "x" };
    for (const field of ["receiver_id", "content", "client_id"]) {
      const reply = await answer(alice, { ...send, [field]: value }, field);
      if (field === "content" && reply.type === "ack") {
        // stored and returned as sent (a lone surrogate, which has no UTF-8, is refused)
        assert.equal(reply.message.content, value.trim());
      }
      if (value.isWellFormed()) continue;
      assert.equal(reply.type, "error", `${field} with a lone surrogate`);
      assert.deepEqual(reply.issues.map((issue: Frame) => issue.path), [field]);
    }
    await answer(aliceAll, { ...send, chat_id: value }, "chat_id");
    await answer(alice, { action: "edit_message", message_id: mine.id, content: value }, "content");
    for (const action of ["read_message", "delete_message"]) {
      await answer(alice, { action, message_id: value }, "message_id");
    }
    await answer(aliceAll, { action: "list_chats", before: value }, "before");
    await answer(aliceAll, { action: "load_latest_chat", chat_id: value }, "chat_id");
    // request_id is echoed as it is: it is the client's own string
    const echoed = await acked(alice, { action: "unread_message", request_id: value.slice(0, 64) });
    assert.equal(echoed.request_id, value.slice(0, 64));
  }

  const admin = await cluster.admin();
  const calls: Array<[string, (value: string) => object]> = [
    ["CreateChat", (value) => ({ user_id: value, vendor_id: "acme" })],
    ["GetChat", (value) => ({ chat_id: value })],
    ["ListChats", (value) => ({ user_id: value })],
    ["GetMessage", (value) => ({ message_id: value })],
    ["SearchMessages", (value) => ({ query: value })],
    [
      "AddVendorMember",
      (value) => ({ vendor_id: "acme", user_id: value, role: "VENDOR_ROLE_AGENT" }),
    ],
    ["BanUser", (value) => ({ user_id: value, moderator_id: "mod", reason: value })],
    ["ListModerationActions", (value) => ({ moderator_id: value })],
  ];
  const allowedStatus = new Set([
    Status.OK,
    Status.INVALID_ARGUMENT,
    Status.NOT_FOUND,
    Status.FAILED_PRECONDITION,
  ]);
  for (const value of hostile) {
    for (const [method, request] of calls) {
      const status = await admin.call(method, request(value)).then(
        () => Status.OK,
        (error) => error.code,
      );
      assert.ok(allowedStatus.has(status), `${method}(${JSON.stringify(value)}): ${status}`);
    }
  }
  // the schema is intact and alice's chat is as it was (but for her own accepted messages)
  assert.equal((await admin.call("GetChat", { chat_id: chat.id })).id, chat.id);
  await stillServes(alice);
  const page = await alice.request({ action: "load_latest_chat", limit: 1, after_seq: 0 });
  assert.equal(page.type, "ack");
  assert.equal(alice.pending("latest_chat").at(-1)?.messages[0]?.id, mine.id);
});

Deno.test("deeply nested and huge JSON get invalid_json or invalid_payload without echoing the input, and others are served meanwhile", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("mallory", "acme");
  const other = await cluster.main.service.chat.createChat("bob", "acme");
  await using mallory = await joinChat(cluster, "mallory", chat.id);
  await using bob = await joinChat(cluster, "bob", other.id);
  await using acme = await joinChat(cluster, "acme", other.id);
  const depth = 1_000_000;
  const frames = [
    // valid JSON, an unknown field a million levels deep: ignored like any unknown field
    `{"action":"unread_message","request_id":"deep","x":${"[".repeat(depth)}${"]".repeat(depth)}}`,
    `{"action":"send_message","request_id":"unclosed","content":${"[".repeat(depth)}`,
    `{"action":"send_message","request_id":"deep-field","receiver_id":"acme","media_type":"text",` +
    `"content":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
    JSON.stringify({
      action: "send_message",
      request_id: "huge",
      receiver_id: "acme",
      media_type: "text",
      content: "x".repeat(10_000_000),
    }),
    `{${Array.from({ length: 300_000 }, (_, index) => `"k${index}":${index}`).join(",")},` +
    `"action":"unread_message","request_id":"wide"}`,
  ];
  const started = performance.now();
  for (const frame of frames) mallory.send(frame);
  // someone else, at the same time
  const sent = await sendText(bob, "acme", "meanwhile");
  assert.equal((await acme.nextOfType("chat_message")).message.id, sent.id);
  const replies = new Map<string, Frame>();
  for (const id of ["deep", "unclosed", "deep-field", "huge", "wide"]) {
    if (id === "unclosed") continue;
    replies.set(id, await mallory.next((frame) => frame.request_id === id, id, 15_000));
  }
  const unclosed = await mallory.next((frame) => frame.code === "invalid_json", "invalid_json");
  assert.equal(unclosed.type, "error");
  assert.equal(replies.get("deep")?.type, "ack");
  assert.equal(replies.get("wide")?.type, "ack");
  for (const id of ["deep-field", "huge"]) {
    const reply = replies.get(id)!;
    assert.equal(reply.code, "invalid_payload", id);
    assert.ok(JSON.stringify(reply).length < 1_000, `${id}: the error does not echo the input`);
  }
  assert.ok(performance.now() - started < 15_000);
  await stillServes(mallory);
});

Deno.test("a flood of binary frames is refused with rate_limited and closed with 4429 like any flood", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_RATE_PER_SECOND: "0.001", WS_RATE_BURST: "3", WS_FLOOD_LIMIT: "5" },
  });
  const chat = await cluster.main.service.chat.createChat("mallory", "acme");
  await using mallory = await joinChat(cluster, "mallory", chat.id);
  await using acme = await joinChat(cluster, "acme", chat.id);
  // three frames of burst, then five refused in a row close it (see limits_test.ts on why the
  // flood stops at the limit)
  for (let index = 0; index < 8; index++) mallory.send(new Uint8Array([0xde, 0xad, index]));
  assert.equal((await within(mallory.closed, 5_000, "the flooding socket to close")).code, 4429);
  assert.equal(mallory.frames.filter((frame) => frame.code === "invalid_frame").length, 3);
  assert.equal(mallory.frames.filter((frame) => frame.code === "rate_limited").length, 4);
  await stillServes(acme);
});

Deno.test("text frames that are not UTF-8, reserved opcodes and oversized control frames end only that connection and free its place", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { WS_MAX_SOCKETS_PER_USER: "1" },
  });
  const chat = await cluster.main.service.chat.createChat("mallory", "acme");
  await using acme = await joinChat(cluster, "acme", chat.id);
  const path = `/v1/ws/chat/${chat.id}/?token=${await cluster.token("mallory")}`;
  const broken: Array<[string, number, Uint8Array]> = [
    ["text that is not UTF-8", 0x1, new Uint8Array([0x7b, 0xc3, 0x28, 0x7d])],
    ["UTF-8 of a surrogate", 0x1, new Uint8Array([0xed, 0xa0, 0x80])],
    ["an overlong encoding", 0x1, new Uint8Array([0xc0, 0xaf])],
    ["a reserved opcode", 0x3, new Uint8Array([1, 2, 3])],
    ["a ping longer than 125 bytes", 0x9, new Uint8Array(200)],
    ["a continuation with nothing to continue", 0x0, new TextEncoder().encode("{}")],
  ];
  for (const [name, opcode, payload] of broken) {
    // one socket per user: had a broken connection kept its place, the next would get 4429
    await using raw = await openRawWebSocket(cluster.main.service.port, path);
    await raw.received((text) => text.startsWith('{"type":"unread_messages"'), `${name}: ready`);
    await raw.sendFrame(opcode, payload);
    // Deno drops such a connection without a close frame; the client sees 1006
    assert.equal(await raw.closed(), null, name);
  }
  await using mallory = await joinChat(cluster, "mallory", chat.id);
  await stillServes(mallory);
  await stillServes(acme);
  assert.equal(await openSockets(cluster), 2);
});

Deno.test("on /v1/ws/chat/{id}/ a chat_id naming another chat is ignored: every action stays in the socket's chat", async () => {
  await using cluster = await startCluster({ nats: false });
  const service = cluster.main.service.chat;
  const mine = await service.createChat("mallory", "vend-1");
  const theirs = await service.createChat("victim", "vend-1");
  await using victim = await joinChat(cluster, "victim", theirs.id);
  await using mallory = await joinChat(cluster, "mallory", mine.id);
  const elsewhere = { chat_id: theirs.id };

  const sent = await sendText(mallory, "vend-1", "into which chat?", elsewhere);
  assert.equal(sent.chat_id, mine.id);
  await acked(mallory, { action: "load_latest_chat", ...elsewhere });
  assert.equal(mallory.pending("latest_chat").at(-1)?.chat_id, mine.id);
  await acked(mallory, { action: "typing", is_typing: true, ...elsewhere });
  await acked(mallory, { action: "read_up_to", seq: 100, ...elsewhere });
  await refused(
    mallory,
    { action: "read_message", message_id: sent.id, ...elsewhere },
    "forbidden",
  );

  const barrier = await sendText(victim, "vend-1", "barrier");
  const seen = await victim.next(
    (frame) => frame.type === "chat_message" && frame.message.id === barrier.id,
    "the barrier",
  );
  const before = victim.frames.slice(0, victim.frames.indexOf(seen));
  assert.deepEqual(
    before.filter((frame) => frame.type !== "latest_chat" && frame.type !== "unread_messages"),
    [],
    "nothing of mallory's reached the victim's chat",
  );
  assert.equal(barrier.seq, 1, "nothing was stored in the victim's chat");
});

Deno.test("RPCs with ids that are not uuids are INVALID_ARGUMENT or NOT_FOUND, never INTERNAL", async () => {
  await using cluster = await startCluster({ nats: false, grpc: true });
  const admin = await cluster.admin();
  const ids = ["not-a-uuid", "' or 1=1 --", "00000000-0000-0000-0000-00000000000g", ""];
  for (const id of ids) {
    for (
      const [method, request] of [
        ["GetChat", { chat_id: id }],
        ["GetMessage", { message_id: id }],
        ["ListMessages", { chat_id: id }],
        ["DeleteMessage", { message_id: id, moderator_id: "mod", reason: "r" }],
      ] as const
    ) {
      const error = await failure(admin.call(method, request));
      assert.ok(
        error.code === Status.INVALID_ARGUMENT || error.code === Status.NOT_FOUND,
        `${method}(${JSON.stringify(id)}): ${error.code}`,
      );
    }
  }
});
