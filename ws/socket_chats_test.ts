import assert from "node:assert/strict";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import { type ChatFeed, type ChatListener, createChatFeed, type FeedLeave } from "../chat/feed.ts";
import type { ChatStore } from "../chat/ports.ts";
import type { ChatService } from "../chat/service.ts";
import type { Membership } from "../chat/types.ts";
import type { ServerFrame } from "../protocol/mod.ts";
import { type ChatsHost, SocketChats } from "./socket_chats.ts";

const AT = "2026-12-05T10:00:00.000Z";

function membership(chatId: string): Membership {
  return {
    chat: {
      id: chatId,
      user_id: `customer-of-${chatId}`,
      vendor_id: "acme",
      created_at: AT,
      updated_at: AT,
      last_seq: 0,
    },
    side: "vendor",
  };
}

/** A member's chats socket as its SocketChats sees it, never to be closed by the test. */
function memberHost(deliver: ChatsHost["deliver"] = () => {}): ChatsHost {
  return {
    userId: "agent-1",
    endpoint: { kind: "chats" },
    closed: false,
    close: () => assert.fail("the socket is not to be closed"),
    deliver,
    onUserEvent: () => {},
    holdLiveEvents: () => () => {},
    lost: () => {},
  };
}

/** The service of a member of acme, whose chats are chat-a and chat-b, whose list is empty. */
function acmeChatsService(): ChatService {
  return {
    joinAllChats: () =>
      Promise.resolve({
        chats: [membership("chat-a"), membership("chat-b")],
        disconnectedOn: null,
      }),
    vendorsOf: () => Promise.resolve(["acme"]),
    listChats: () => Promise.resolve({ items: [], has_more: false }),
  } as unknown as ChatService;
}

/** A feed over the memory bus, whose store has every chat at seq 0. */
function feedAtStart(): ChatFeed {
  return createChatFeed({
    bus: createMemoryBus(),
    store: {
      lastSeqs: (chatIds: readonly string[]) =>
        Promise.resolve(new Map(chatIds.map((chatId) => [chatId, 0]))),
    } as unknown as ChatStore,
    subjects: createSubjects("t"),
  });
}

/**
 * A member's chats socket over a store whose chats and vendors the test sets, whose next read of
 * the chats fails when told to, and a feed whose next join fails when told to: the store
 * answered the read of the chats, then failed in following them.
 */
function memberSocket() {
  const state = {
    chats: [] as string[],
    vendors: ["acme"],
    failNextRead: false,
    failNextJoin: false,
    /** Runs as the chats are read (before the read answers): an event arriving meanwhile. */
    whileReading: undefined as (() => void) | undefined,
    joined: [] as string[],
    /** The users and vendors whose user events the socket hears. */
    heard: new Set<string>(),
  };
  const service = {
    joinAllChats: () => {
      if (state.failNextRead) {
        state.failNextRead = false;
        return Promise.reject(new Error("the store went away"));
      }
      state.whileReading?.();
      return Promise.resolve({ chats: state.chats.map(membership), disconnectedOn: null });
    },
    vendorsOf: () => Promise.resolve(state.vendors),
    membership: (_userId: string, chatId: string) => Promise.resolve(membership(chatId)),
    memberships: (_userId: string, chatIds: readonly string[]) =>
      Promise.resolve(chatIds.map(membership)),
    listChats: () =>
      Promise.resolve({
        items: state.chats.map((chatId) => ({ chat_id: chatId })),
        has_more: false,
      }),
  } as unknown as ChatService;
  const feed = {
    join(chatIds: readonly string[]) {
      if (state.failNextJoin) {
        state.failNextJoin = false;
        return Promise.reject(new Error("the store went away"));
      }
      state.joined.push(...chatIds);
      return Promise.resolve(() => {});
    },
    onUser(userId: string) {
      state.heard.add(userId);
      return () => state.heard.delete(userId);
    },
    roundTrip: () => Promise.resolve(),
  } as unknown as ChatFeed;
  const host = memberHost();
  const sent: ServerFrame[] = [];
  const chats = new SocketChats(host, { service, feed });
  return { state, chats, sent, send: (frame: ServerFrame) => sent.push(frame) };
}

Deno.test("a chat list refresh that fails in following the chats gained keeps none of them, and the next one gains and sends them", async () => {
  const { state, chats, sent, send } = memberSocket();
  state.chats = ["chat-a"];
  await chats.takeInAllChats();
  assert.deepEqual(state.joined, ["chat-a"]);

  // chat-a lost, chat-b gained; following chat-b fails half-way through the refresh
  state.chats = ["chat-b"];
  state.failNextJoin = true;
  await assert.rejects(chats.refreshChatList(send), /the store went away/);
  assert.deepEqual([...chats.memberships.keys()], [], "chat-b is not kept unfollowed");
  assert.equal(sent.length, 0);

  await chats.refreshChatList(send);
  assert.deepEqual(state.joined, ["chat-a", "chat-b"]);
  assert.deepEqual([...chats.memberships.keys()], ["chat-b"]);
  assert.deepEqual(sent.map((frame) => frame.type), ["chats"]);

  // nothing changed since: no list again
  await chats.refreshChatList(send);
  assert.equal(sent.length, 1);
});

Deno.test("a chat lost in a refresh that then fails is still sent in the list once the next refresh succeeds", async () => {
  const { state, chats, sent, send } = memberSocket();
  state.chats = ["chat-a", "chat-b"];
  await chats.takeInAllChats();

  state.chats = ["chat-b", "chat-c"];
  state.failNextJoin = true;
  await assert.rejects(chats.refreshChatList(send));
  // the next read finds nothing new, yet the loss of chat-a was never sent
  state.chats = ["chat-b"];
  await chats.refreshChatList(send);
  assert.deepEqual([...chats.memberships.keys()], ["chat-b"]);
  assert.deepEqual(sent.map((frame) => frame.type), ["chats"]);
});

Deno.test("a vendor adopted while the store fails to read the chats is adopted when told again", async () => {
  const { state, chats, sent, send } = memberSocket();
  // a member of no vendor yet
  state.vendors = [];
  await chats.takeInAllChats();

  state.chats = ["chat-a"];
  state.vendors = ["acme"];
  state.failNextRead = true;
  await assert.rejects(chats.adoptVendor("acme", send), /the store went away/);
  assert.equal(state.heard.has("acme"), false, "acme is not heard with none of its chats kept");

  // the feed sweep tells of the membership_added again
  await chats.adoptVendor("acme", send);
  assert.deepEqual(state.joined, ["chat-a"]);
  assert.deepEqual([...chats.memberships.keys()], ["chat-a"]);
  assert.equal(state.heard.has("acme"), true);
  assert.deepEqual(sent.map((frame) => frame.type), ["chats"]);
});

Deno.test("a new chat whose following fails is not kept, so the next refresh follows it", async () => {
  const { state, chats, send } = memberSocket();
  state.chats = ["chat-a"];
  await chats.takeInAllChats();

  state.chats = ["chat-a", "chat-b"];
  state.failNextJoin = true;
  await assert.rejects(chats.takeInNewChats(["chat-b"]), /the store went away/);
  // not kept: a chat_created told again takes it in anew
  assert.deepEqual([...chats.memberships.keys()], ["chat-a"]);

  await chats.refreshChatList(send);
  assert.deepEqual(state.joined, ["chat-a", "chat-b"]);
  assert.deepEqual([...chats.memberships.keys()], ["chat-a", "chat-b"]);
});

Deno.test("a member removed while the chats socket first reads its chats stops hearing the vendor, and is taken in again when added back", async () => {
  const { state, chats, sent, send } = memberSocket();
  state.chats = ["chat-a"];
  // the read answers with acme's chats and acme, as it was before the removal was committed
  state.whileReading = () => chats.revoke("acme");
  await chats.takeInAllChats();
  assert.deepEqual([...chats.memberships.keys()], []);
  assert.equal(state.heard.has("acme"), false, "acme's new chats are not heard");

  state.whileReading = undefined;
  await chats.adoptVendor("acme", send);
  assert.deepEqual([...chats.memberships.keys()], ["chat-a"]);
  assert.equal(state.heard.has("acme"), true);
  assert.deepEqual(sent.map((frame) => frame.type), ["chats"]);
});

Deno.test("a member's chats socket stops following the vendor's chats on the feed once its membership is revoked", async () => {
  const feed = feedAtStart();
  const own = {
    chat: { ...membership("own-chat").chat, user_id: "agent-1", vendor_id: "elsewhere" },
    side: "customer" as const,
  };
  const service = {
    joinAllChats: () =>
      Promise.resolve({
        chats: [own, membership("chat-a"), membership("chat-b")],
        disconnectedOn: null,
      }),
    vendorsOf: () => Promise.resolve(["acme"]),
    listChats: () => Promise.resolve({ items: [], has_more: false }),
  } as unknown as ChatService;
  const delivered: string[] = [];
  const host = memberHost((delivery) => delivered.push(delivery.envelope.frame.chat_id));
  const chats = new SocketChats(host, { service, feed });
  try {
    await chats.takeInAllChats();
    assert.equal(feed.size, 3);
    assert.equal(chats.revoke("acme"), true);
    // the chats of acme are seen no more: this instance need not hear their events for it
    assert.deepEqual([...chats.memberships.keys()], ["own-chat"]);
    assert.equal(feed.size, 1, "the vendor's chats are still followed for the socket");

    // added back: the vendor's chats are followed again, and their events come
    await chats.adoptVendor("acme", () => {});
    assert.deepEqual([...chats.memberships.keys()].sort(), ["chat-a", "chat-b", "own-chat"]);
    assert.equal(feed.size, 3);
    feed.publishChat("chat-a", {
      chat: { user_id: "customer-of-chat-a", vendor_id: "acme" },
      audience: { to: "all" },
      frame: { type: "typing", chat_id: "chat-a", user_id: "customer-of-chat-a", is_typing: true },
      sent_at: Date.now(),
    });
    assert.deepEqual(delivered, ["chat-a"]);
  } finally {
    chats.stop();
    feed.close();
  }
  assert.equal(feed.size, 0);
});

Deno.test("a member's chats socket removed from a vendor and added back holds only the joins of the chats it still follows", async () => {
  const feed = feedAtStart();
  // each join's leave, as the socket holds it: called by the close only if still held
  const leavesAtClose: string[][] = [];
  let closing = false;
  const counted = {
    ...feed,
    async join(chatIds: readonly string[], listener: ChatListener): Promise<FeedLeave> {
      const leave = await feed.join(chatIds, listener);
      return (only) => {
        if (closing && only === undefined) leavesAtClose.push([...chatIds]);
        leave(only);
      };
    },
  };
  const chats = new SocketChats(memberHost(), { service: acmeChatsService(), feed: counted });
  try {
    await chats.takeInAllChats();
    for (let i = 0; i < 5; i++) {
      assert.equal(chats.revoke("acme"), true);
      await chats.adoptVendor("acme", () => {});
    }
    assert.equal(feed.size, 2);
  } finally {
    closing = true;
    chats.stop();
    feed.close();
  }
  // each join held kept its chats' feed entries until the close: one per removal, without bound
  assert.deepEqual(leavesAtClose, [["chat-a", "chat-b"]], "only the last join was still held");
  assert.equal(feed.size, 0);
});

Deno.test("a member's chats socket removed from the vendor while its chats' feeds are being joined does not follow them", async () => {
  const feed = feedAtStart();
  const { promise: joining, resolve: joinBegun } = Promise.withResolvers<void>();
  const { promise: answered, resolve: answerJoin } = Promise.withResolvers<void>();
  const gated = {
    ...feed,
    async join(chatIds: readonly string[], listener: ChatListener): Promise<FeedLeave> {
      const leave = await feed.join(chatIds, listener);
      joinBegun();
      await answered;
      return leave;
    },
  };
  const chats = new SocketChats(memberHost(), { service: acmeChatsService(), feed: gated });
  try {
    const takingIn = chats.takeInAllChats();
    await joining;
    // the removal is heard while the join is under way: nothing of it is followed yet to leave
    assert.equal(chats.revoke("acme"), true);
    answerJoin();
    await takingIn;
    assert.equal(chats.memberships.size, 0);
    // the vendor's chats, seen no more, are not followed until the socket closes
    assert.equal(feed.size, 0, "the chats lost during the join are still followed");
  } finally {
    chats.stop();
    feed.close();
  }
});
