import assert from "node:assert/strict";
import { createDelivery, type Delivery } from "./delivery.ts";
import type { ChatEnvelope } from "./events.ts";
import type { ChatStore, StoredUnread, UnreadSnapshot } from "./ports.ts";
import { type StoredMessage, toClientMessage } from "./types.ts";
import { createUnreadPushes } from "./unread_push.ts";

const CHAT = "c1";
const participants = { user_id: "customer", vendor_id: "vendor" };

function stored(seq: number, content: string, edited_at: string | null = null): StoredMessage {
  return {
    id: `m${seq}`,
    chat_id: CHAT,
    seq,
    sender_id: "customer",
    sender_side: "customer",
    receiver_id: "vendor",
    media_type: "text",
    content,
    media_url: null,
    media_id: null,
    is_read: false,
    read_at: null,
    edited_at,
    deleted: false,
    deleted_at: null,
    deleted_by: null,
    created_at: "2026-01-01T00:00:00.000Z",
    updated_at: "2026-01-01T00:00:00.000Z",
    client_id: null,
  };
}

/**
 * The customer's message with its publisher's snapshot: as its publisher hands it over, or as
 * another instance receives it, the messages named by seq only.
 */
function published(message: StoredMessage, snapshot: UnreadSnapshot, here = true): Delivery {
  const envelope: ChatEnvelope = {
    chat: participants,
    audience: { to: "all" },
    frame: { type: "chat_message", chat_id: CHAT, message: toClientMessage(message) },
    sent_at: 0,
    unread: {
      side: "vendor",
      count: snapshot.count,
      seqs: snapshot.messages.map((unread) => unread.seq),
    },
  };
  const unreadMessages = snapshot.messages.map((unread) => JSON.stringify(toClientMessage(unread)));
  return createDelivery(envelope, here ? { unreadMessages } : {});
}

/** The contents and count of each `unread_messages` push. */
function pushesTo(sent: Delivery[]) {
  return sent.map((push) => {
    const frame = JSON.parse(push.text);
    return { count: frame.count, contents: frame.messages.map((m: StoredMessage) => m.content) };
  });
}

/** A store whose unread reads are answered when the test says. */
function heldStore() {
  const reads: Array<(snapshot: StoredUnread) => void> = [];
  const store = {
    unread: () => new Promise<StoredUnread>((resolve) => reads.push(resolve)),
  } as unknown as ChatStore;
  return { store, reads };
}

const to = (sent: Delivery[]) => ({
  send: (push: Delivery) => sent.push(push),
  stillFollowed: () => true,
});

Deno.test("a store read begun before an edit does not bring the old text back into later pushes", async () => {
  const { store, reads } = heldStore();
  const pushes = createUnreadPushes({ store, onError: (error) => assert.fail(String(error)) });
  const sent: Delivery[] = [];
  pushes.afterStored(CHAT, "vendor", { chat: participants, sent_at: 0, seq: 1 }, to(sent));
  // the edit commits after the read began, and its event goes out before the read answers
  const edited = stored(1, "edited", "2026-01-01T00:00:01.000Z");
  pushes.edited(CHAT, toClientMessage(edited));
  reads[0]!({ count: 1, messages: [stored(1, "first")], last_seq: 1 });
  await Promise.resolve();
  // another instance's message, whose snapshot names seqs only: made from the previous push
  const second = stored(2, "second");
  pushes.after(CHAT, published(second, { count: 2, messages: [edited, second] }, false), to(sent));
  assert.deepEqual(pushesTo(sent), [
    { count: 1, contents: ["edited"] },
    { count: 2, contents: ["edited", "second"] },
  ]);
});

Deno.test("a message's snapshot taken before an edit went out shows the edited text", () => {
  const pushes = createUnreadPushes({ store: {} as ChatStore, onError: () => {} });
  const sent: Delivery[] = [];
  const first = stored(1, "first");
  pushes.after(CHAT, published(first, { count: 1, messages: [first] }), to(sent));
  // message 2's publisher took its snapshot, then the edit of 1 committed and went out first
  pushes.edited(CHAT, toClientMessage(stored(1, "edited", "2026-01-01T00:00:01.000Z")));
  const second = stored(2, "second");
  pushes.after(CHAT, published(second, { count: 2, messages: [first, second] }), to(sent));
  const third = stored(3, "third");
  pushes.after(
    CHAT,
    published(third, { count: 3, messages: [first, second, third] }, false),
    to(sent),
  );
  assert.deepEqual(pushesTo(sent).map((push) => push.contents), [
    ["first"],
    ["edited", "second"],
    ["edited", "second", "third"],
  ]);
});

Deno.test("a message's snapshot taken before a deletion or a read mark went out leaves that message out", () => {
  const pushes = createUnreadPushes({ store: {} as ChatStore, onError: () => {} });
  const sent: Delivery[] = [];
  const [first, second, third] = [stored(1, "first"), stored(2, "second"), stored(3, "third")];
  pushes.after(CHAT, published(second, { count: 2, messages: [first, second] }), to(sent));
  // message 3's publisher took its snapshot, then 1 was deleted and 2 read, both out first
  pushes.gone(CHAT, 1);
  pushes.gone(CHAT, 2);
  pushes.after(CHAT, published(third, { count: 3, messages: [first, second, third] }), to(sent));
  assert.deepEqual(pushesTo(sent), [
    { count: 2, contents: ["first", "second"] },
    { count: 1, contents: ["third"] },
  ]);
});

Deno.test("a message's snapshot taken before a read up to a seq went out leaves the read ones out", () => {
  const pushes = createUnreadPushes({ store: {} as ChatStore, onError: () => {} });
  const sent: Delivery[] = [];
  const [first, second, third] = [stored(1, "first"), stored(2, "second"), stored(3, "third")];
  pushes.after(CHAT, published(second, { count: 2, messages: [first, second] }), to(sent));
  // message 3's publisher took its snapshot, then the vendor read up to 2, out first
  pushes.readUpTo(CHAT, "vendor", 2);
  pushes.after(CHAT, published(third, { count: 3, messages: [first, second, third] }), to(sent));
  assert.deepEqual(pushesTo(sent), [
    { count: 2, contents: ["first", "second"] },
    { count: 1, contents: ["third"] },
  ]);
});

Deno.test("a snapshot taken before a read up to a seq counts none of the unlisted older messages", () => {
  const pushes = createUnreadPushes({ store: {} as ChatStore, onError: () => {} });
  const sent: Delivery[] = [];
  // 61 unread: the snapshot names the newest 50 (12 to 61), and counts the 11 older too
  const newest = Array.from({ length: 50 }, (_, index) => stored(12 + index, `m${12 + index}`));
  const last = newest.at(-1)!;
  // message 61's publisher took its snapshot, then the vendor read up to 60, out first: every
  // unlisted message is older than a listed one it read, so read too
  pushes.readUpTo(CHAT, "vendor", 60);
  pushes.after(CHAT, published(last, { count: 61, messages: newest }), to(sent));
  assert.deepEqual(pushesTo(sent), [{ count: 1, contents: ["m61"] }]);
});

Deno.test("a store read under way keeps its chat side's window, so that a later push still supersedes it", async () => {
  const { store, reads } = heldStore();
  const pushes = createUnreadPushes({ store, onError: (error) => assert.fail(String(error)) });
  const sent: Delivery[] = [];
  pushes.afterStored(CHAT, "vendor", { chat: participants, sent_at: 0, seq: 1 }, to(sent));
  // a busy instance: thousands of other chats' pushes while the read is under way
  for (let chat = 0; chat < 2_500; chat++) {
    const message = { ...stored(1, "elsewhere"), chat_id: `other${chat}` };
    pushes.after(`other${chat}`, published(message, { count: 1, messages: [message] }), to([]));
  }
  const [first, second] = [stored(1, "first"), stored(2, "second")];
  pushes.after(CHAT, published(second, { count: 2, messages: [first, second] }), to(sent));
  // the read, begun before message 2 went out, answers last: it is superseded
  reads[0]!({ count: 1, messages: [first], last_seq: 1 });
  await Promise.resolve();
  assert.deepEqual(pushesTo(sent), [{ count: 2, contents: ["first", "second"] }]);
});

Deno.test("windows are kept past the bound while every one has a store read under way", async () => {
  const { store, reads } = heldStore();
  const pushes = createUnreadPushes({ store, onError: (error) => assert.fail(String(error)) });
  const sent: Delivery[] = [];
  for (let chat = 0; chat < 2_100; chat++) {
    pushes.afterStored(
      `chat${chat}`,
      "vendor",
      { chat: participants, sent_at: 0, seq: 1 },
      to(sent),
    );
  }
  for (const answer of reads) answer({ count: 1, messages: [stored(1, "first")], last_seq: 1 });
  await Promise.resolve();
  assert.equal(sent.length, 2_100);
});
