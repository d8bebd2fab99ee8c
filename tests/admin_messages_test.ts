import assert from "node:assert/strict";
import postgres from "postgres";
import { failure, type Reply, Status } from "./support/admin_client.ts";
import { startCluster } from "./support/service.ts";
import { untilNoStatementRuns } from "./support/statement_reads.ts";
import { joinChat, seedMessages, sendText } from "./support/steps.ts";

const contents = (messages: Reply[]) => messages.map((message) => message.content);

Deno.test("GetMessage returns a message, a deleted one with its content", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  const sent = await sendText(alice, "acme", "hello there");
  const message = await admin.call("GetMessage", { message_id: sent.id });
  assert.equal(message.chat_id, chat.id);
  assert.equal(message.seq, 1);
  assert.equal(message.sender_id, "alice");
  assert.equal(message.receiver_id, "acme");
  assert.equal(message.media_type, "MEDIA_TYPE_TEXT");
  assert.equal(message.content, "hello there");
  assert.equal(message.deleted, false);
  assert.equal(message.deleted_at, null);
  assert.equal(
    Date.parse(sent.created_at),
    message.created_at.seconds * 1000 +
      message.created_at.nanos / 1e6,
  );

  await alice.request({ action: "delete_message", message_id: sent.id });
  const deleted = await admin.call("GetMessage", { message_id: sent.id });
  assert.equal(deleted.deleted, true);
  assert.equal(deleted.content, "hello there");
  assert.equal(deleted.deleted_by, "alice");
  assert.ok(deleted.deleted_at.seconds > 0);
});

Deno.test("GetMessage of an unknown message is NOT_FOUND, of a malformed id INVALID_ARGUMENT", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const unknown = await failure(admin.call("GetMessage", { message_id: crypto.randomUUID() }));
  assert.equal(unknown.code, Status.NOT_FOUND);
  const malformed = await failure(admin.call("GetMessage", { message_id: "1; select 1" }));
  assert.equal(malformed.code, Status.INVALID_ARGUMENT);
  assert.match(malformed.details, /^message_id: /);
});

Deno.test("ListMessages pages newest first to the last page, deleted ones on request", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  const sent = [];
  for (let index = 1; index <= 5; index++) {
    sent.push(await sendText(alice, "acme", `message ${index}`));
  }
  await alice.request({ action: "delete_message", message_id: sent[1]!.id });

  const pages = await admin.pages("ListMessages", { chat_id: chat.id, page_size: 2 }, "messages");
  assert.deepEqual(pages.map(contents), [["message 5", "message 4"], ["message 3", "message 1"]]);
  const all = await admin.pages(
    "ListMessages",
    { chat_id: chat.id, page_size: 2, include_deleted: true },
    "messages",
  );
  assert.deepEqual(all.map((page) => page.map((message) => message.seq)), [[5, 4], [3, 2], [1]]);
  assert.equal(all[1]![1]!.deleted, true);
  assert.equal(all[1]![1]!.content, "message 2");
  const chatNow = await admin.call("GetChat", { chat_id: chat.id });
  assert.equal(chatNow.message_count, 5);
});

Deno.test("ListMessages of an unknown chat is NOT_FOUND and a token of another chat INVALID_ARGUMENT", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const missing = await failure(admin.call("ListMessages", { chat_id: crypto.randomUUID() }));
  assert.equal(missing.code, Status.NOT_FOUND);
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const other = await admin.call("CreateChat", { user_id: "bob", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  await sendText(alice, "acme", "one");
  await sendText(alice, "acme", "two");
  const page = await admin.call("ListMessages", { chat_id: chat.id, page_size: 1 });
  const error = await failure(
    admin.call("ListMessages", { chat_id: other.id, page_token: page.next_page_token }),
  );
  assert.equal(error.code, Status.INVALID_ARGUMENT);
  assert.match(error.details, /^page_token: /);
});

Deno.test("SearchMessages ranks the best match first and reads web-search syntax", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  await sendText(alice, "acme", "antique brass lamp for sale");
  await sendText(alice, "acme", "lamp lamp lamp");
  await sendText(
    alice,
    "acme",
    "do you ship the lamp to berlin tomorrow or some day next week please",
  );
  await sendText(alice, "acme", "nothing to see here");
  await sendText(alice, "acme", "Merhaba, çanta hâlâ satılık mı?");

  const search = async (query: string) =>
    contents((await admin.call("SearchMessages", { query })).messages);
  assert.deepEqual(await search("lamp"), [
    "lamp lamp lamp",
    "antique brass lamp for sale",
    "do you ship the lamp to berlin tomorrow or some day next week please",
  ]);
  assert.deepEqual(await search("LAMP brass"), ["antique brass lamp for sale"]);
  assert.deepEqual(await search('"ship the lamp"'), [
    "do you ship the lamp to berlin tomorrow or some day next week please",
  ]);
  assert.deepEqual(await search("lamp -brass -berlin"), ["lamp lamp lamp"]);
  assert.deepEqual((await search("brass or nothing")).sort(), [
    "antique brass lamp for sale",
    "nothing to see here",
  ]);
  assert.deepEqual(await search("çanta"), ["Merhaba, çanta hâlâ satılık mı?"]);
  // words match as written: no stemming into another language's roots
  assert.deepEqual(await search("lamps"), []);
  // SQL is only ever a word here
  assert.deepEqual(await search("'; drop table messages; --"), []);
});

Deno.test("SearchMessages finds a link as the message wrote it, excluded with - and in a phrase too", async () => {
  await using cluster = await startCluster({ grpc: true, nats: false });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  const spam = await sendText(alice, "acme", "cheap watches at http://spam.biz/free now");
  const plain = await sendText(alice, "acme", "cheap watches in town");
  const meeting = await sendText(alice, "acme", "see you at 10:30 then");
  const found = async (query: string) =>
    (await admin.call("SearchMessages", { query })).messages.map((message: Reply) => message.id);
  // pasted from a message: a moderator looks for who else sent that link
  assert.deepEqual(await found("http://spam.biz/free"), [spam.id]);
  assert.deepEqual(await found("cheap -http://spam.biz/free"), [plain.id]);
  assert.deepEqual(
    (await found('"cheap watches" https://spam.biz/free or 10:30')).sort(),
    [meeting.id, spam.id].sort(),
  );
  assert.deepEqual(await found("10:30"), [meeting.id]);
});

Deno.test("SearchMessages filters by chat, sender, time and deletion", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const other = await admin.call("CreateChat", { user_id: "bob", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  await using vendor = await joinChat(cluster, "acme", chat.id);
  await using bob = await joinChat(cluster, "bob", other.id);
  const first = await sendText(alice, "acme", "is the red bike still there");
  const second = await sendText(vendor, "alice", "yes the red bike is here");
  const third = await sendText(bob, "acme", "red bike for me too");
  const gone = await sendText(alice, "acme", "red bike typo");
  await alice.request({ action: "delete_message", message_id: gone.id });

  const ids = async (request: object) =>
    (await admin.call("SearchMessages", { query: "red bike", ...request })).messages
      .map((message: Reply) => message.id).sort();
  const sorted = (...messages: Reply[]) => messages.map((message) => message.id).sort();
  assert.deepEqual(await ids({}), sorted(first, second, third));
  assert.deepEqual(await ids({ include_deleted: true }), sorted(first, second, third, gone));
  assert.deepEqual(await ids({ chat_id: chat.id }), sorted(first, second));
  assert.deepEqual(await ids({ sender_id: "acme" }), sorted(second));
  assert.deepEqual(await ids({ chat_id: other.id, sender_id: "alice" }), []);
  const at = (message: Reply) => {
    const ms = Date.parse(message.created_at);
    return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
  };
  assert.deepEqual(await ids({ created_after: at(second) }), sorted(second, third));
  assert.deepEqual(await ids({ created_before: at(second) }), sorted(first));
  assert.deepEqual(
    await ids({ created_after: at(second), created_before: at(third) }),
    sorted(second),
  );
});

Deno.test("SearchMessages reads created_after and created_before to the nanosecond", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  const sent = await sendText(alice, "acme", "red bike");
  const ms = Date.parse(sent.created_at);
  // a nanosecond after the message was sent
  const justAfter = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 + 1 };
  const found = async (request: object) =>
    (await admin.call("SearchMessages", { query: "red bike", ...request })).messages
      .map((message: Reply) => message.id);
  assert.deepEqual(await found({ created_after: justAfter }), [], "sent before created_after");
  assert.deepEqual(await found({ created_before: justAfter }), [sent.id], "sent before it");
  const lastInstant = { seconds: 253_402_300_799, nanos: 999_999_999 };
  assert.deepEqual(await found({ created_before: lastInstant }), [sent.id]);
  // a window within one millisecond is a window (holding no message), not a backwards one
  const twoAfter = { ...justAfter, nanos: justAfter.nanos + 1 };
  assert.deepEqual(await found({ created_after: justAfter, created_before: twoAfter }), []);
  const same = await failure(
    admin.call("SearchMessages", {
      query: "red bike",
      created_after: justAfter,
      created_before: justAfter,
    }),
  );
  assert.match(same.details, /^created_before: must be after created_after$/);
});

Deno.test("SearchMessages pages to the last page in rank order and binds its tokens to the query", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  await using alice = await joinChat(cluster, "alice", chat.id);
  for (let index = 0; index < 7; index++) {
    // equal ranks in pairs: paging must still neither skip nor repeat
    await sendText(alice, "acme", `apple ${"pie ".repeat(Math.floor(index / 2))}`.trim());
  }
  await sendText(alice, "acme", "banana");
  const whole = (await admin.call("SearchMessages", { query: "apple" })).messages;
  assert.equal(whole.length, 7);
  const pages = await admin.pages("SearchMessages", { query: "apple", page_size: 3 }, "messages");
  assert.deepEqual(pages.map((page) => page.length), [3, 3, 1]);
  assert.deepEqual(pages.flat().map((m) => m.id), whole.map((m: Reply) => m.id));
  // among equal matches, newest first
  assert.ok(whole[0].seq > whole[1].seq && whole[0].content === whole[1].content);

  const first = await admin.call("SearchMessages", { query: "apple", page_size: 3 });
  const error = await failure(
    admin.call("SearchMessages", { query: "apple pie", page_token: first.next_page_token }),
  );
  assert.equal(error.code, Status.INVALID_ARGUMENT);
  assert.match(error.details, /^page_token: /);
});

Deno.test("SearchMessages lists equal matches sent in one group commit (one created_at) newest first, on every page", async () => {
  await using cluster = await startCluster({ grpc: true, nats: false });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const service = cluster.main.service.chat;
  const { membership } = await service.joinChat("alice", chat.id);
  const actor = { user_id: "alice", membership };
  // a burst (a spammer's, say): the writer stores what queued meanwhile in one statement
  const sent = await Promise.all(Array.from({ length: 8 }, () =>
    service.sendMessage(actor, {
      receiver_id: "acme",
      media_type: "text",
      content: "cheap watches",
      media: null,
      client_id: null,
    })));
  const times = sent.map(({ message }) => message.created_at);
  assert.ok(new Set(times).size < times.length - 2, `no group commit: ${times.join(" ")}`);

  const newestFirst = Array.from({ length: 8 }, (_, index) => 8 - index);
  const whole = (await admin.call("SearchMessages", { query: "cheap watches" })).messages;
  assert.deepEqual(whole.map((message: Reply) => message.seq), newestFirst);
  const pages = await admin.pages(
    "SearchMessages",
    { query: "cheap watches", page_size: 3 },
    "messages",
  );
  assert.deepEqual(pages.flat().map((message) => message.seq), newestFirst);
});

Deno.test("SearchMessages refuses a query without words and a backwards time range", async () => {
  await using cluster = await startCluster({ grpc: true });
  const admin = await cluster.admin();
  const empty = await failure(admin.call("SearchMessages", { query: "  " }));
  assert.equal(empty.code, Status.INVALID_ARGUMENT);
  assert.equal(empty.details, "query: is required");
  const punctuation = await failure(admin.call("SearchMessages", { query: "!!! & |" }));
  assert.equal(punctuation.code, Status.INVALID_ARGUMENT);
  assert.equal(punctuation.details, "query: has no words to search for");
  const backwards = await failure(admin.call("SearchMessages", {
    query: "lamp",
    created_after: { seconds: 2_000_000_000, nanos: 0 },
    created_before: { seconds: 1_000_000_000, nanos: 0 },
  }));
  assert.equal(backwards.code, Status.INVALID_ARGUMENT);
  assert.match(backwards.details, /^created_before: /);
  const badChat = await failure(admin.call("SearchMessages", { query: "lamp", chat_id: "x" }));
  assert.match(badChat.details, /^chat_id: must be a UUID$/);
});

Deno.test("ListMessages and SearchMessages cut a page of long messages short to fit a gRPC client's default 4 MiB, and the next pages bring the rest", async () => {
  await using cluster = await startCluster({ grpc: true, nats: false });
  const admin = await cluster.admin();
  const chat = await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  // 500 messages of 4,000 characters of three bytes each: 6 MB in one page of 500
  const count = 500;
  await seedMessages(cluster, chat.id, {
    from: "alice",
    to: "acme",
    count,
    text: (n) => `lamp ${String(n).padStart(3, "0")} ${"漢".repeat(3_991)}`,
  });
  for (
    const [method, request] of [
      ["ListMessages", { chat_id: chat.id }],
      ["SearchMessages", { query: "lamp" }],
    ] as const
  ) {
    const pages = await admin.pages(method, { ...request, page_size: 500 }, "messages");
    assert.ok(pages.length > 1, `${method}: one page of ${pages[0]?.length}`);
    const seqs = pages.flat().map((message) => message.seq).sort((a, b) => a - b);
    assert.deepEqual(seqs, Array.from({ length: count }, (_, index) => index + 1), method);
  }
});

Deno.test("a SearchMessages call its client gives up on ends its query at once, freeing its connection of the shared pool", async () => {
  await using cluster = await startCluster({ grpc: true, nats: false });
  const admin = await cluster.admin();
  await admin.call("CreateChat", { user_id: "alice", vendor_id: "acme" });
  const observer = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });
  const locker = await observer.reserve();
  try {
    // a search that cannot finish: a migration, say, holds the table (the database itself
    // would end it only at its 4 s statement timeout)
    await locker`begin`;
    await locker`lock table messages in access exclusive mode`;
    const given = await failure(
      admin.call("SearchMessages", { query: "lamp" }, { deadlineMs: 200 }),
    );
    assert.equal(given.code, Status.DEADLINE_EXCEEDED);
    await untilNoStatementRuns(observer, "websearch_to_tsquery", 1_500);
  } finally {
    await locker`rollback`;
    locker.release();
    await observer.end();
  }
});
