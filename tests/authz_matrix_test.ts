/**
 * Who may do what, as tables: actors × actions × targets over real sockets, the media route and
 * the admin plane, each cell's answer taken from the contract (protocol.md, admin-plane.md) or,
 * where it is silent, the safe one: refused, and the same refusal whether or not the thing exists
 * in a chat the caller cannot see. Forged, expired and misaddressed tokens are in hostile_test.ts;
 * the per-chat-id socket refusals on `/v1/ws/chats/` in isolation_test.ts.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { hs256Key } from "../auth/secret.ts";
import { Status } from "./support/admin_client.ts";
import { fetchMedia, fixture, uploadMedia } from "./support/media.ts";
import { startCluster, type TestCluster } from "./support/service.ts";
import { acked, joinAllChats, joinChat, sendText } from "./support/steps.ts";
import { natsCutToSecondInstance } from "./support/nats_cut.ts";
import { follow } from "./support/watch_stream.ts";
import { type Frame, TestSocket } from "./support/ws_client.ts";
import { within } from "./support/wait.ts";

/** Every cell is a frame: the socket's rate limit is no part of the table. */
const UNLIMITED = { env: { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" } };

/** "ack", or the error code the reply must carry. */
type Answer = "ack" | string;

/**
 * Chat A (cust-a and vend-a, whose agent is agent-a), chat B of strangers (cust-b, vend-b and its
 * agent-b), and chat C (cust-b and vend-a): vend-a's other chat. Messages of each, two of A
 * deleted (one by each side).
 */
async function world(cluster: TestCluster) {
  const service = cluster.main.service.chat;
  const [a, b, c] = [
    await service.createChat("cust-a", "vend-a"),
    await service.createChat("cust-b", "vend-b"),
    await service.createChat("cust-b", "vend-a"),
  ];
  await service.addVendorMember("vend-a", "agent-a", "agent");
  await service.addVendorMember("vend-b", "agent-b", "agent");
  const send = async (chatId: string, from: string, to: string, content: string) => {
    await using socket = await joinChat(cluster, from, chatId);
    return await sendText(socket, to, content);
  };
  const messages = {
    a_customer: await send(a.id, "cust-a", "vend-a", "a: from the customer"),
    a_vendor: await send(a.id, "vend-a", "cust-a", "a: from the vendor"),
    a_deleted_customer: await send(a.id, "cust-a", "vend-a", "a: taken back by the customer"),
    a_deleted_vendor: await send(a.id, "vend-a", "cust-a", "a: taken back by the vendor"),
    b_customer: await send(b.id, "cust-b", "vend-b", "b: private"),
    b_vendor: await send(b.id, "vend-b", "cust-b", "b: private answer"),
    c_customer: await send(c.id, "cust-b", "vend-a", "c: private"),
    c_vendor: await send(c.id, "vend-a", "cust-b", "c: private answer"),
  };
  {
    await using customer = await joinChat(cluster, "cust-a", a.id);
    await acked(customer, { action: "delete_message", message_id: messages.a_deleted_customer.id });
    await using vendor = await joinChat(cluster, "vend-a", a.id);
    await acked(vendor, { action: "delete_message", message_id: messages.a_deleted_vendor.id });
  }
  return { a, b, c, messages };
}

/** What the admin plane stores of a chat: each message's text, read and deleted marks. */
async function storedState(cluster: TestCluster, chatId: string) {
  const chat = await cluster.main.service.chat.getChat(chatId);
  const { items } = await cluster.main.service.chat.history(chat, { limit: 100 });
  const unread = await Promise.all(
    (["cust", "vend"] as const).map(async (prefix) => {
      const userId = prefix === "cust" ? chat.user_id : chat.vendor_id;
      const { membership } = await cluster.main.service.chat.joinChat(userId, chatId);
      return (await cluster.main.service.chat.unread(membership)).unread.count;
    }),
  );
  return {
    unread,
    messages: items.map((m) => [m.id, m.content, m.is_read, m.deleted, m.edited_at]),
  };
}

/**
 * The reply to `frame`, as a cell: "ack" or its error code. Refusals are noted in `texts` as
 * `action code: message`, for a test to show that they read alike.
 */
async function answerOf(socket: TestSocket, frame: Frame, texts?: Set<string>): Promise<Answer> {
  const reply = await socket.request(frame);
  if (reply.type === "ack") return "ack";
  texts?.add(`${frame.action} ${reply.code}: ${reply.message}`);
  return reply.code;
}

Deno.test("authz matrix: message actions on /v1/ws/chat/{id}/ by each side, on every kind of message id", async () => {
  await using cluster = await startCluster(UNLIMITED);
  const { a, b, c, messages: m } = await world(cluster);
  const before = { b: await storedState(cluster, b.id), c: await storedState(cluster, c.id) };
  const odd = {
    unknown: crypto.randomUUID(),
    nil: "00000000-0000-0000-0000-000000000000",
    b_upper: m.b_customer.id.toUpperCase(),
    sql: "' or 1=1 --",
    like: `${m.b_customer.id.slice(0, -1)}%`,
    padded: ` ${m.b_customer.id}`,
  };
  // [target, read_message, edit_message, delete_message] for the customer, then for the agent
  const customerRows: Array<[string, Answer, Answer, Answer]> = [
    [m.a_vendor.id, "ack", "forbidden", "forbidden"],
    [m.a_deleted_vendor.id, "not_found", "not_found", "not_found"],
    [m.a_deleted_customer.id, "not_found", "not_found", "ack"], // own tombstone: a retry
    [m.b_customer.id, "not_found", "not_found", "not_found"],
    [m.b_vendor.id, "not_found", "not_found", "not_found"],
    [m.c_vendor.id, "not_found", "not_found", "not_found"],
    [odd.unknown, "not_found", "not_found", "not_found"],
    [odd.nil, "not_found", "not_found", "not_found"],
    [odd.b_upper, "not_found", "not_found", "not_found"],
    [odd.sql, "invalid_payload", "invalid_payload", "invalid_payload"],
    [odd.like, "invalid_payload", "invalid_payload", "invalid_payload"],
    [odd.padded, "invalid_payload", "invalid_payload", "invalid_payload"],
    [m.a_customer.id, "forbidden", "ack", "ack"], // last: deletes it
  ];
  const agentRows: Array<[string, Answer, Answer, Answer]> = [
    [m.a_vendor.id, "forbidden", "forbidden", "forbidden"], // the vendor's: not the agent's own
    [m.a_deleted_vendor.id, "not_found", "not_found", "not_found"],
    [m.c_customer.id, "not_found", "not_found", "not_found"], // the vendor's other chat
    [m.c_vendor.id, "not_found", "not_found", "not_found"],
    [m.b_customer.id, "not_found", "not_found", "not_found"],
    [odd.unknown, "not_found", "not_found", "not_found"],
  ];
  const table: Array<[string, Array<[string, Answer, Answer, Answer]>]> = [
    ["cust-a", customerRows],
    ["agent-a", agentRows],
  ];
  const wrong: string[] = [];
  const refusals = new Set<string>();
  for (const [userId, rows] of table) {
    await using socket = await joinChat(cluster, userId, a.id);
    for (const [message_id, read, edit, remove] of rows) {
      const cells: Array<[Frame, Answer]> = [
        [{ action: "read_message", message_id }, read],
        [{ action: "edit_message", message_id, content: "changed" }, edit],
        [{ action: "delete_message", message_id }, remove],
      ];
      for (const [frame, expected] of cells) {
        const got = await answerOf(socket, frame, refusals);
        if (got !== expected) wrong.push(`${userId} ${frame.action} ${message_id}: ${got}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
  // one text for every not_found of an action: a tombstone, another chat's message and an
  // unknown id read alike
  assert.deepEqual([...refusals].filter((text) => text.includes(" not_found: ")).sort(), [
    "delete_message not_found: no such message in this chat",
    "edit_message not_found: no such message in this chat",
    "read_message not_found: no such message in this chat",
  ]);
  // nothing of the other chats was read, edited or deleted, nor their unread counts changed
  assert.deepEqual(
    { b: await storedState(cluster, b.id), c: await storedState(cluster, c.id) },
    before,
  );
});

Deno.test("authz matrix: send_message in a chat by each side, to each receiver, as whoever the frame names", async () => {
  await using cluster = await startCluster(UNLIMITED);
  const service = cluster.main.service.chat;
  const { a, b, c } = await world(cluster);
  await service.addVendorMember("vend-a", "agent-gone", "agent");
  await service.removeVendorMember("vend-a", "agent-gone");
  const before = { b: await storedState(cluster, b.id), c: await storedState(cluster, c.id) };
  // sender → receivers that must be acked, then those refused invalid_payload
  const table: Array<[string, string[], string[]]> = [
    ["cust-a", ["vend-a", "agent-a"], ["cust-a", "agent-b", "vend-b", "cust-b", "agent-gone"]],
    ["agent-a", ["cust-a"], ["vend-a", "agent-a", "cust-b", "agent-b", "agent-gone", "nobody"]],
    ["vend-a", ["cust-a"], ["vend-a", "agent-a", "cust-b"]],
  ];
  const wrong: string[] = [];
  for (const [userId, allowed, strangers] of table) {
    await using socket = await joinChat(cluster, userId, a.id);
    const cells = [
      ...allowed.map((to) => [to, "ack"] as const),
      ...strangers.map((to) => [to, "invalid_payload"] as const),
    ];
    for (const [receiver_id, expected] of cells) {
      // the sender and chat the frame names are not the socket's: ignored
      const reply = await socket.request({
        action: "send_message",
        receiver_id,
        media_type: "text",
        content: `${userId} to ${receiver_id}`,
        sender_id: "cust-b",
        chat_id: b.id,
      });
      const got = reply.type === "ack" ? "ack" : reply.code;
      if (got !== expected) wrong.push(`${userId} to ${receiver_id}: ${got}`);
      if (got === "ack" && (reply.message.sender_id !== userId || reply.message.chat_id !== a.id)) {
        wrong.push(`${userId} to ${receiver_id}: stored as ${JSON.stringify(reply.message)}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual(
    { b: await storedState(cluster, b.id), c: await storedState(cluster, c.id) },
    before,
  );
});

Deno.test("authz matrix: on /v1/ws/chats/ a chat_id the user is in, not in, or that does not exist, with each kind of message id", async () => {
  await using cluster = await startCluster(UNLIMITED);
  const { a, b, c, messages: m } = await world(cluster);
  const before = { b: await storedState(cluster, b.id), c: await storedState(cluster, c.id) };
  await using customer = await joinAllChats(cluster, "cust-a");
  const unknown = crypto.randomUUID();
  // chat_id × message_id: a chat of the user's with another chat's message is not_found, any
  // chat not the user's is forbidden, whatever the message, so nothing tells one that exists
  const rows: Array<[string, string, string, Answer]> = [
    ["own chat, B's message", a.id, m.b_customer.id, "not_found"],
    ["own chat, C's message", a.id, m.c_vendor.id, "not_found"],
    ["own chat, unknown message", a.id, crypto.randomUUID(), "not_found"],
    ["B with its own message", b.id, m.b_vendor.id, "forbidden"],
    ["B with an unknown message", b.id, crypto.randomUUID(), "forbidden"],
    ["C with its own message", c.id, m.c_vendor.id, "forbidden"],
    ["unknown chat with B's message", unknown, m.b_vendor.id, "forbidden"],
    ["unknown chat, unknown message", unknown, crypto.randomUUID(), "forbidden"],
    ["B in upper case", b.id.toUpperCase(), m.b_vendor.id, "forbidden"],
    ["a chat id of SQL", "' or 1=1 --", m.b_vendor.id, "invalid_payload"],
  ];
  const wrong: string[] = [];
  const refusals = new Set<string>();
  for (const [name, chat_id, message_id, expected] of rows) {
    for (
      const frame of [
        { action: "read_message", chat_id, message_id },
        { action: "edit_message", chat_id, message_id, content: "changed" },
        { action: "delete_message", chat_id, message_id },
      ]
    ) {
      const got = await answerOf(customer, frame, refusals);
      if (got !== expected) wrong.push(`${name} ${frame.action}: ${got}`);
    }
  }
  for (const chat_id of [b.id, b.id.toUpperCase(), unknown]) {
    for (
      const frame of [
        { action: "load_latest_chat", chat_id, after_seq: 0 },
        { action: "read_up_to", chat_id, seq: Number.MAX_SAFE_INTEGER },
        { action: "unread_message", chat_id },
        { action: "typing", chat_id, is_typing: true },
      ]
    ) {
      const got = await answerOf(customer, frame, refusals);
      if (got !== "forbidden") wrong.push(`${chat_id} ${frame.action}: ${got}`);
    }
  }
  assert.deepEqual(wrong, []);
  // another chat and an unknown one are refused in the same words
  const forbidden = [...refusals].filter((text) => text.includes(" forbidden: "));
  assert.deepEqual(
    new Set(forbidden.map((text) => text.slice(text.indexOf(":")))),
    new Set([": not a participant of this chat"]),
  );
  assert.deepEqual(customer.pending("latest_chat"), []);
  assert.deepEqual(customer.pending("unread_messages"), []);
  assert.deepEqual(
    { b: await storedState(cluster, b.id), c: await storedState(cluster, c.id) },
    before,
  );
});

Deno.test("authz matrix: who may connect to which chat, and to /v1/ws/chats/", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const { a, b } = await world(cluster);
  const banned = await service.createChat("cust-banned", "vend-a");
  await service.addVendorMember("vend-a", "agent-gone", "agent");
  await service.removeVendorMember("vend-a", "agent-gone");
  await service.banUser("cust-banned", 0, { moderator_id: "mod", reason: "spam" });
  const unknown = crypto.randomUUID();
  // actor → [chat A, chat B, the banned user's chat, an unknown chat, /v1/ws/chats/]
  const open = "open";
  const table: Array<[string, Array<string | number>]> = [
    ["cust-a", [open, 4403, 4403, 4403, open]],
    ["vend-a", [open, 4403, open, 4403, open]],
    ["agent-a", [open, 4403, open, 4403, open]],
    ["agent-b", [4403, open, 4403, 4403, open]],
    ["agent-gone", [4403, 4403, 4403, 4403, open]],
    ["cust-banned", [4403, 4403, 4403, 4403, 4403]],
    ["nobody", [4403, 4403, 4403, 4403, open]],
  ];
  const paths = [a.id, b.id, banned.id, unknown].map((id) => `/v1/ws/chat/${id}/`);
  paths.push("/v1/ws/chats/");
  const wrong: string[] = [];
  for (const [userId, expected] of table) {
    const token = await cluster.token(userId);
    for (const [index, path] of paths.entries()) {
      await using socket = await TestSocket.open(`${cluster.main.wsUrl}${path}`, { token });
      const got = await within(
        Promise.race([
          socket.closed.then(({ code }) => code),
          socket.next((frame) => frame.type === "latest_chat" || frame.type === "chats", "hello")
            .then(() => open, () => "no frame"),
        ]),
        5_000,
        `${userId} ${path}`,
      );
      if (got !== expected[index]) wrong.push(`${userId} ${path}: ${got}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("authz matrix: a member removed, or a user banned, whose socket has not heard of it yet reads nothing more of the chat", async () => {
  // the sockets are on the second instance, cut off from NATS while the removal and the ban are
  // made through the first: their events are lost to it until it is back (no sweep meanwhile)
  await using setup = await natsCutToSecondInstance({ FEED_SWEEP_SECONDS: "600" });
  const { cluster, proxy } = setup;
  const service = cluster.main.service.chat;
  await service.addVendorMember("vend-a", "agent-gone", "agent");
  const chat = await service.createChat("cust-a", "vend-a");
  const banned = await service.createChat("cust-banned", "vend-a");
  const sockets = {
    removed: await joinChat(cluster, "agent-gone", chat.id, 1),
    removedAll: await joinAllChats(cluster, "agent-gone", 1),
    banned: await joinChat(cluster, "cust-banned", banned.id, 1),
    bannedAll: await joinAllChats(cluster, "cust-banned", 1),
  };
  await proxy.cut();
  await service.removeVendorMember("vend-a", "agent-gone");
  await service.banUser("cust-banned", 0, { moderator_id: "mod", reason: "spam" });
  await using customer = await joinChat(cluster, "cust-a", chat.id, 0);
  await using vendor = await joinChat(cluster, "vend-a", banned.id, 0);
  await sendText(customer, "vend-a", "after the removal");
  await sendText(vendor, "cust-banned", "after the ban");

  // [socket, its chat] × every action that reads the chat: forbidden, as a write would be
  const rows: Array<[keyof typeof sockets, string | undefined]> = [
    ["removed", undefined],
    ["removedAll", chat.id],
    ["banned", undefined],
    ["bannedAll", banned.id],
  ];
  const wrong: string[] = [];
  for (const [name, chat_id] of rows) {
    const socket = sockets[name];
    for (
      const frame of [
        { action: "load_latest_chat", chat_id },
        { action: "load_latest_chat", chat_id, after_seq: 0 },
        { action: "unread_message", chat_id },
      ]
    ) {
      const got = await answerOf(socket, frame);
      if (got !== "forbidden") wrong.push(`${name} ${JSON.stringify(frame)}: ${got}`);
    }
  }
  // the banned user's chat list is theirs no more either; the removed member's is their own
  const listed = await answerOf(sockets.bannedAll, { action: "list_chats" });
  if (listed !== "forbidden") wrong.push(`bannedAll list_chats: ${listed}`);
  await acked(sockets.removedAll, { action: "list_chats" });
  // once the instance is back, its sockets learn of it from the store: closed, or the list
  // without the vendor's chat, and pushed nothing sent after meanwhile
  proxy.restore();
  const closes = await within(
    Promise.all([sockets.removed.closed, sockets.banned.closed, sockets.bannedAll.closed]),
    15_000,
    "the removed member's and the banned user's sockets to close",
  );
  assert.deepEqual(closes.map(({ code }) => code), [4403, 4403, 4403]);
  await sockets.removedAll.next(
    (frame) => frame.type === "chats" && frame.chats.length === 0,
    "the removed member's list without the vendor's chat",
    15_000,
  );
  sockets.removedAll.close();
  for (const [name, socket] of Object.entries(sockets)) {
    const shown = socket.frames.flatMap((frame) =>
      frame.type === "latest_chat" || frame.type === "unread_messages"
        ? frame.messages
        : frame.type === "chats"
        ? frame.chats.map((chat: Frame) => chat.last_message)
        : frame.type === "chat_message" || frame.type === "message_edited"
        ? [frame.message]
        : []
    ).filter((message: Frame | null) => message?.content?.startsWith("after"));
    if (shown.length > 0) wrong.push(`${name} was shown ${shown.length} messages after`);
  }
  assert.deepEqual(wrong, []);
});

Deno.test("authz matrix: tokens whose user claim is missing or odd are closed 4401 on both endpoints and refused on media", async () => {
  await using cluster = await startCluster({ nats: false });
  const chat = await cluster.main.service.chat.createChat("alice", "acme");
  const exp = Math.floor(Date.now() / 1000) + 600;
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT({ exp, ...claims }).setProtectedHeader({ alg: "HS256" }).sign(
      hs256Key(cluster.secret),
    );
  const odd: Record<string, Record<string, unknown>> = {
    "no user claim at all": {},
    "user_id null beside a good sub": { user_id: null, sub: "alice" },
    "user_id false": { user_id: false },
    "user_id an array": { user_id: ["alice"] },
    "user_id a fraction": { user_id: 1.5 },
    "user_id past safe integers": { user_id: 2 ** 60 },
    "user_id with padding": { user_id: " alice" },
    "user_id of 300 characters": { user_id: "a".repeat(300) },
    "sub an object": { sub: { user_id: "alice" } },
  };
  const wrong: string[] = [];
  for (const [name, claims] of Object.entries(odd)) {
    const token = await sign(claims);
    for (const path of [`/v1/ws/chat/${chat.id}/`, "/v1/ws/chats/"]) {
      await using socket = await TestSocket.open(`${cluster.main.wsUrl}${path}`, { token });
      const { code } = await within(socket.closed, 5_000, `${name} ${path}`);
      if (code !== 4401) wrong.push(`${name} ${path}: ${code}`);
    }
    const media = await fetch(`${cluster.main.httpUrl}/v1/media/${crypto.randomUUID()}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await media.body?.cancel();
    if (media.status !== 401) wrong.push(`${name} media: ${media.status}`);
  }
  assert.deepEqual(wrong, []);
});

Deno.test("authz matrix: media of a chat by each actor", async () => {
  await using cluster = await startCluster();
  const service = cluster.main.service.chat;
  const { a } = await world(cluster);
  await service.addVendorMember("vend-a", "agent-gone", "agent");
  await service.createChat("cust-banned", "vend-a");
  const image = (await fixture("image.png")).toBase64();
  const sendImage = async (socket: TestSocket, to: string) =>
    (await acked(socket, { action: "send_message", receiver_id: to, media_type: "image", image }))
      .message;
  await using customer = await joinChat(cluster, "cust-a", a.id);
  const kept = await sendImage(customer, "vend-a");
  const deleted = await sendImage(customer, "vend-a");
  await acked(customer, { action: "delete_message", message_id: deleted.id });
  const unsent = await uploadMedia(
    cluster,
    "cust-a",
    { chat_id: a.id },
    await fixture("image.png"),
  );
  assert.equal(unsent.status, 201);
  await service.removeVendorMember("vend-a", "agent-gone");
  await service.banUser("cust-banned", 0, { moderator_id: "mod", reason: "spam" });
  // the deleted one's media_url as its send was acknowledged, before it was deleted
  const urls = [
    kept.media_url,
    deleted.media_url,
    unsent.json.media_url,
    `/v1/media/${crypto.randomUUID()}`,
  ];
  // actor → [a message's media, a deleted message's, an upload not sent yet, an unknown id]
  const table: Array<[string | null, number[]]> = [
    ["cust-a", [200, 404, 200, 404]],
    ["vend-a", [200, 404, 404, 404]],
    ["agent-a", [200, 404, 404, 404]],
    ["agent-gone", [404, 404, 404, 404]],
    ["agent-b", [404, 404, 404, 404]],
    ["cust-b", [404, 404, 404, 404]], // vend-a's other customer
    ["cust-banned", [404, 404, 404, 404]],
    [null, [401, 401, 401, 401]],
  ];
  const wrong: string[] = [];
  const refusals = new Set<string>();
  for (const [userId, expected] of table) {
    for (const [index, url] of urls.entries()) {
      const { response, body } = await fetchMedia(cluster, userId, url);
      if (response.status !== expected[index]) wrong.push(`${userId} ${url}: ${response.status}`);
      if (response.status === 404) refusals.add(new TextDecoder().decode(body));
    }
  }
  assert.deepEqual(wrong, []);
  // every 404 reads alike: nothing tells a file that exists from one that does not
  assert.equal(refusals.size, 1, [...refusals].join("\n"));
});

Deno.test("authz matrix: every ChatAdmin call, WatchEvents too, is UNAUTHENTICATED without the right token", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await cluster.main.service.chat.createChat("cust-a", "vend-a");
  const callers = [
    { token: null },
    { token: "wrong-token-of-some-length" },
    { token: `${cluster.adminToken}x` },
    { token: cluster.adminToken.slice(0, -1) },
    { authorization: `Basic ${cluster.adminToken}` },
  ];
  const wrong: string[] = [];
  for (const caller of callers) {
    for (const request of [{}, { chat_id: chat.id }]) {
      const stream = follow(admin.watch(request, caller));
      const ended = await within(stream.ended, 5_000, "the refused stream's end");
      if (ended.code !== Status.UNAUTHENTICATED) {
        wrong.push(`WatchEvents ${JSON.stringify(caller)}: ${ended.code}`);
      }
      assert.deepEqual(stream.events, []);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("authz matrix: admin RPCs on unknown, odd and deleted targets", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const { a, messages: m } = await world(cluster);
  const unknown = crypto.randomUUID();
  const by = { moderator_id: "mod-1", reason: "matrix" };
  // [rpc, request, expected status]
  const rows: Array<[string, object, number]> = [
    ["GetChat", { chat_id: unknown }, Status.NOT_FOUND],
    ["GetMessage", { message_id: unknown }, Status.NOT_FOUND],
    ["ListMessages", { chat_id: unknown }, Status.NOT_FOUND],
    ["DeleteMessage", { message_id: unknown, ...by }, Status.NOT_FOUND],
    ["RemoveVendorMember", { vendor_id: "vend-a", user_id: "cust-a" }, Status.NOT_FOUND],
    ["RemoveVendorMember", { vendor_id: "vend-b", user_id: "agent-a" }, Status.NOT_FOUND],
    ["UnbanUser", { user_id: "cust-a", ...by }, Status.NOT_FOUND],
    ["CreateChat", { user_id: "vend-a", vendor_id: "vend-a" }, Status.INVALID_ARGUMENT],
    ["GetChat", { chat_id: "' or 1=1 --" }, Status.INVALID_ARGUMENT],
    ["GetMessage", { message_id: `${m.b_customer.id}'` }, Status.INVALID_ARGUMENT],
    ["ListMessages", { chat_id: `${a.id.slice(0, -1)}%` }, Status.INVALID_ARGUMENT],
    ["SearchMessages", { query: "private", chat_id: "' or 1=1 --" }, Status.INVALID_ARGUMENT],
  ];
  const wrong: string[] = [];
  for (const [method, request, expected] of rows) {
    const code = await admin.call(method, request).then(() => Status.OK, (error) => error.code);
    if (code !== expected) wrong.push(`${method} ${JSON.stringify(request)}: ${code}`);
  }
  const watch = follow(admin.watch({ chat_id: unknown }));
  const ended = await within(watch.ended, 5_000, "WatchEvents of an unknown chat");
  if (ended.code !== Status.NOT_FOUND) wrong.push(`WatchEvents unknown chat: ${ended.code}`);
  assert.deepEqual(wrong, []);

  // the admin plane sees a tombstone's content; deleting it again changes nothing
  const tombstone = await admin.call("GetMessage", { message_id: m.a_deleted_customer.id });
  assert.equal(tombstone.deleted, true);
  assert.equal(tombstone.content, "a: taken back by the customer");
  const again = await admin.call("DeleteMessage", { message_id: m.a_deleted_customer.id, ...by });
  assert.equal(again.deleted_by, "cust-a");
  // a search filtered to an unknown chat finds nothing, as one of a chat without the words
  const none = await admin.call("SearchMessages", { query: "private", chat_id: unknown });
  assert.deepEqual(none.messages, []);
});
