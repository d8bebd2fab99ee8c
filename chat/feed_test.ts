import assert from "node:assert/strict";
import type { Bus } from "../bus/bus.ts";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import type { ChatEnvelope, UserEvent } from "./events.ts";
import { type ChatListener, createChatFeed } from "./feed.ts";
import type { ChatStore } from "./ports.ts";
import { storedRow } from "../tests/support/stored_messages.ts";
import { settledWhileHeld, within } from "../tests/support/wait.ts";
import { MAX_HELD_BEHIND } from "./chat_sequencer.ts";
import { toClientMessage } from "./types.ts";

/** The in-process bus, with the subscriptions it holds counted by subject. */
function countingBus(): { bus: Bus; held: Map<string, number> } {
  const inner = createMemoryBus();
  const held = new Map<string, number>();
  return {
    held,
    bus: {
      ...inner,
      subscribe(subject, handler) {
        held.set(subject, (held.get(subject) ?? 0) + 1);
        const unsubscribe = inner.subscribe(subject, handler);
        return () => {
          held.set(subject, held.get(subject)! - 1);
          unsubscribe();
        };
      },
    },
  };
}

Deno.test("user listeners share one bus subscription and each hears only its own user", () => {
  const { bus, held } = countingBus();
  const subjects = createSubjects("test");
  // user events never touch the store
  const feed = createChatFeed({ bus, store: {} as ChatStore, subjects });
  const heard: Array<[string, UserEvent]> = [];
  const leaveAlice = feed.onUser("alice", (event) => heard.push(["alice", event]));
  const leaveAliceAgain = feed.onUser("alice", (event) => heard.push(["alice 2", event]));
  const leaveBob = feed.onUser("bob", (event) => heard.push(["bob", event]));
  assert.deepEqual([...held], [[subjects.allUsers, 1]]);

  const ban: UserEvent = { type: "disconnect", user_id: "alice", reason: "banned" };
  feed.publishUser("alice", ban);
  assert.deepEqual(heard, [["alice", ban], ["alice 2", ban]]);

  leaveAlice();
  leaveAlice();
  leaveBob();
  assert.equal(held.get(subjects.allUsers), 1, "alice's second socket still listens");
  feed.publishUser("bob", { type: "disconnect", user_id: "bob", reason: "operator" });
  assert.equal(heard.length, 2, "bob left");

  leaveAliceAgain();
  assert.equal(held.get(subjects.allUsers), 0, "the last listener gave the subscription up");
  const later: UserEvent[] = [];
  feed.onUser("alice", (event) => later.push(event));
  feed.publishUser("alice", ban);
  assert.deepEqual(later, [ban]);
  assert.equal(held.get(subjects.allUsers), 1);
});

Deno.test("a user listener that throws is reported and the others still hear the event", () => {
  const { bus } = countingBus();
  const errors: string[] = [];
  const feed = createChatFeed({ bus, store: {} as ChatStore, subjects: createSubjects("test") }, {
    onError: (_error, context) => errors.push(context),
  });
  const heard: UserEvent[] = [];
  feed.onUser("alice", () => {
    throw new Error("listener broke");
  });
  feed.onUser("alice", (event) => heard.push(event));
  const event: UserEvent = { type: "membership_revoked", vendor_id: "v1", user_id: "alice" };
  feed.publishUser("alice", event);
  assert.deepEqual(heard, [event]);
  assert.deepEqual(errors, ["user listener"]);
});

Deno.test("a resync request reaches every resync listener through one bus subscription, and a throwing one is reported", () => {
  const { bus, held } = countingBus();
  const subjects = createSubjects("test");
  const errors: string[] = [];
  const feed = createChatFeed({ bus, store: {} as ChatStore, subjects }, {
    onError: (_error, context) => errors.push(context),
  });
  const heard: string[] = [];
  const stopFirst = feed.onResync(() => heard.push("first"));
  const stopBroken = feed.onResync(() => {
    throw new Error("listener broke");
  });
  const stopSecond = feed.onResync(() => heard.push("second"));
  assert.deepEqual([...held], [[subjects.resync, 1]]);

  feed.requestResync(1_000);
  assert.deepEqual(heard, ["first", "second"]);
  assert.deepEqual(errors, ["resync listener"]);

  stopFirst();
  stopBroken();
  // another instance's request arrives on the same subject
  bus.publish(subjects.resync, new Uint8Array());
  assert.deepEqual(heard, ["first", "second", "second"]);
  stopSecond();
  assert.equal(held.get(subjects.resync), 0, "the last listener gave the subscription up");
});

Deno.test("a store away for many sweeps is reported once for each kind of sweep, and again after it was back", async () => {
  const subjects = createSubjects("test");
  let storeAway = false;
  let asked = 0;
  const waiters: Array<{ after: number; resolve: () => void }> = [];
  /** Resolves once the sweeps have asked the store `more` more times. */
  const sweepsAsked = (more: number) =>
    new Promise<void>((resolve) => waiters.push({ after: asked + more, resolve }));
  const answer = <T>(value: T): Promise<T> => {
    asked++;
    for (const waiter of waiters.filter((waiter) => asked >= waiter.after)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      queueMicrotask(waiter.resolve);
    }
    return storeAway ? Promise.reject(new Error("store away")) : Promise.resolve(value);
  };
  const store = {
    lastSeqs: (chatIds: readonly string[]) => answer(new Map(chatIds.map((id) => [id, 0]))),
    amendedWithin: () => answer([]),
    readWithin: () => answer([]),
    readTallies: () => Promise.resolve({ fromMs: 0, toMs: 0, chats: [] }),
    getChats: () => answer([]),
    chatsCreatedWithin: () => answer([]),
    membersAddedWithin: () => Promise.resolve([]),
    membersRemovedWithin: () => Promise.resolve([]),
  } as unknown as ChatStore;
  const reported: string[] = [];
  const feed = createChatFeed({ bus: createMemoryBus(), store, subjects }, {
    sweepEveryMs: 5,
    onError: (_error, context) => reported.push(context),
  });
  try {
    const leave = await feed.join(["chat-1"], () => {});
    storeAway = true;
    // six sweeps, each asking for messages, amendments and new chats (members, read tallies: not
    // counted)
    await sweepsAsked(18);
    const kinds = ["sweep", "sweep amendments", "sweep user events"];
    assert.deepEqual(reported.sort(), kinds);
    storeAway = false;
    await sweepsAsked(6);
    storeAway = true;
    await sweepsAsked(6);
    assert.deepEqual(reported.sort(), [...kinds, ...kinds].sort());
    leave();
  } finally {
    feed.close();
  }
});

/**
 * A feed over the counting bus and a store whose reads of where chats stand are answered (or
 * failed) when the test says.
 */
function feedReadingOnCue() {
  type Read = { chatIds: readonly string[]; answer(): void; fail(error: Error): void };
  const reads: Read[] = [];
  const waiters: Array<(read: Read) => void> = [];
  const store = {
    lastSeqs(chatIds: readonly string[]) {
      const { promise, resolve, reject } = Promise.withResolvers<Map<string, number>>();
      const read = {
        chatIds,
        answer: () => resolve(new Map(chatIds.map((id) => [id, 0]))),
        fail: reject,
      };
      const waiter = waiters.shift();
      if (waiter) waiter(read);
      else reads.push(read);
      return promise;
    },
  } as unknown as ChatStore;
  /** Resolves with the next read asked for, as soon as it is asked. */
  const nextRead = (): Promise<Read> => {
    const read = reads.shift();
    return read ? Promise.resolve(read) : new Promise((resolve) => waiters.push(resolve));
  };
  const { bus, held } = countingBus();
  const subjects = createSubjects("test");
  return { feed: createChatFeed({ bus, store, subjects }), held, subjects, nextRead };
}

/** A typing event of `chatId`: no seq, so it goes out as soon as the chat's position is known. */
function typingIn(chatId: string): ChatEnvelope {
  return {
    chat: { user_id: "alice", vendor_id: "acme" },
    audience: { to: "all" },
    frame: { type: "typing", chat_id: chatId, user_id: "alice", is_typing: true },
    sent_at: 0,
  };
}

/** A listener that notes the chat of each event it hears. */
function chatsHeard(): { heard: string[]; listener: ChatListener } {
  const heard: string[] = [];
  return { heard, listener: (delivery) => heard.push(delivery.envelope.frame.chat_id) };
}

Deno.test("a join goes through when a chat's last listener leaves while the join reads where its other chats stand", async () => {
  const { feed, held, subjects, nextRead } = feedReadingOnCue();
  const joinedA = feed.join(["X"], () => {});
  (await nextRead()).answer();
  const leaveA = await joinedA;

  // B follows X, which the feed has, and Y, which it must open: X's last listener leaves
  // while Y's position is being read
  const b = chatsHeard();
  const joinedB = feed.join(["Y", "X"], b.listener);
  const readY = await nextRead();
  assert.deepEqual(readY.chatIds, ["Y"]);
  leaveA();
  readY.answer();
  const leaveB = await joinedB;

  feed.publishChat("X", typingIn("X"));
  feed.publishChat("Y", typingIn("Y"));
  assert.deepEqual(b.heard, ["X", "Y"]);
  leaveB();
  assert.equal(feed.size, 0);
  assert.equal(held.get(subjects.chat("X")), 0, "X's subscription released");
  assert.equal(held.get(subjects.chat("Y")), 0, "Y's subscription released");
});

Deno.test("a join that fails to open a chat closes none that another join is still opening", async () => {
  const { feed, held, subjects, nextRead } = feedReadingOnCue();
  const joinedA = feed.join(["Z"], () => {});
  const readZ = await nextRead();
  const b = chatsHeard();
  const joinedB = feed.join(["Y"], b.listener);
  const readY = await nextRead();
  // C wants both chats being opened: Z's failure fails C's join, which leaves Y as well
  const joinedC = feed.join(["Y", "Z"], () => {});

  readZ.fail(new Error("store away"));
  await assert.rejects(joinedA, /store away/);
  await assert.rejects(joinedC, /store away/);
  assert.equal(held.get(subjects.chat("Z")), 0, "Z, which no join holds, is closed");
  readY.answer();
  const leaveB = await joinedB;

  feed.publishChat("Y", typingIn("Y"));
  assert.deepEqual(b.heard, ["Y"]);
  leaveB();
  assert.equal(feed.size, 0);
  assert.equal(held.get(subjects.chat("Y")), 0, "Y's subscription released");
});

Deno.test("read marks not kept behind a gap the store could not fill are read from the store once it is filled", async () => {
  const subjects = createSubjects("test");
  const chat = { user_id: "alice", vendor_id: "acme" };
  let storeAway = true;
  const amendmentWindows: number[] = [];
  const { promise: replayed, resolve: replay } = Promise.withResolvers<void>();
  const store = {
    lastSeqs: (chatIds: readonly string[]) =>
      Promise.resolve(new Map(chatIds.map((id) => [id, 1]))),
    messagesBetween: (chatId: string, from: number, to: number) =>
      storeAway
        ? Promise.reject(new Error("store away"))
        : Promise.resolve([storedRow(chatId, 2)].filter(({ seq }) => seq >= from && seq <= to)),
    unread: () => Promise.resolve({ count: 0, messages: [] }),
    amendedWithin: (_chatIds: readonly string[], window: { withinMs: number }) => {
      amendmentWindows.push(window.withinMs);
      replay();
      return Promise.resolve([]);
    },
    readTallies: () => Promise.resolve({ fromMs: 0, toMs: 0, chats: [] }),
    readWithin: () => Promise.resolve([]),
    getChats: () => Promise.resolve([]),
  } as unknown as ChatStore;
  const bus = createMemoryBus();
  const feed = createChatFeed({ bus, store, subjects }, { gapWaitMs: 5 });
  const onBus = (envelope: ChatEnvelope) =>
    bus.publish(subjects.chat("chat-1"), new TextEncoder().encode(JSON.stringify(envelope)));
  try {
    const heard: string[] = [];
    const leave = await feed.join(["chat-1"], ({ envelope: { frame } }) => heard.push(frame.type));
    // message 2 was lost; 3 came, and more read marks of it than are held while the store is away
    const sentAt = Date.now() - 30_000;
    const message = toClientMessage(storedRow("chat-1", 3));
    onBus({
      chat,
      audience: { to: "all" },
      frame: { type: "chat_message", chat_id: "chat-1", message },
      sent_at: sentAt,
    });
    for (let n = 0; n <= MAX_HELD_BEHIND; n++) {
      onBus({
        chat,
        audience: { to: "all" },
        frame: {
          type: "message_read",
          chat_id: "chat-1",
          message_id: message.id,
          seq: 3,
          reader_id: "acme",
          read_at: new Date(sentAt).toISOString(),
        },
        sent_at: sentAt,
      });
    }
    storeAway = false;
    await within(replayed, 2_000, "the amendments read from the store");
    assert.ok(heard.includes("chat_message"));
    assert.ok(
      amendmentWindows[0]! >= 30_000,
      `the amendments of the last ${amendmentWindows[0]} ms were read`,
    );
    leave();
  } finally {
    feed.close();
  }
});

Deno.test("an amendment replayed from the store goes to the listeners that were there when it was made, not to one that joined after", async () => {
  const subjects = createSubjects("test");
  const pause = () => new Promise((resolve) => setTimeout(resolve, 5));
  let deletedAt = "";
  const store = {
    lastSeqs: (chatIds: readonly string[]) =>
      Promise.resolve(new Map(chatIds.map((id) => [id, 3]))),
    // message 2, deleted while the bus was away: its live event never came
    amendedWithin: () =>
      Promise.resolve([
        storedRow("chat-1", 2, { deleted: true, deleted_at: deletedAt, deleted_by: "alice" }),
      ]),
    readTallies: () => Promise.resolve({ fromMs: 0, toMs: 0, chats: [] }),
    readWithin: () => Promise.resolve([]),
    getChats: (chatIds: readonly string[]) =>
      Promise.resolve(chatIds.map((id) => ({ id, user_id: "alice", vendor_id: "acme" }))),
  } as unknown as ChatStore;
  const feed = createChatFeed({ bus: createMemoryBus(), store, subjects });
  try {
    const there: string[] = [];
    const { promise: told, resolve: tell } = Promise.withResolvers<void>();
    const leaveThere = await feed.join(["chat-1"], ({ envelope: { frame } }) => {
      there.push(frame.type);
      if (frame.type === "message_deleted") tell();
    });
    await pause();
    deletedAt = new Date().toISOString();
    await pause();
    // a socket that came after the deletion (a client back from another instance): the page
    // it was sent from the store had message 2 deleted already
    const after: string[] = [];
    const leaveAfter = await feed.join(["chat-1"], ({ envelope: { frame } }) => {
      after.push(frame.type);
    });
    feed.requestResync(60_000);
    await within(told, 2_000, "the deletion replayed");
    assert.deepEqual(there, ["message_deleted"]);
    assert.deepEqual(after, [], "the listener that joined after the deletion is not told it");
    leaveThere();
    leaveAfter();
  } finally {
    feed.close();
  }
});

Deno.test("a feed closed fills no gap of a chat still followed", async () => {
  const subjects = createSubjects("test");
  const gapReads: number[] = [];
  const store = {
    lastSeqs: (chatIds: readonly string[]) =>
      Promise.resolve(new Map(chatIds.map((id) => [id, 1]))),
    messagesBetween: (chatId: string, from: number, to: number) => {
      gapReads.push(from);
      return Promise.resolve([storedRow(chatId, 2)].filter(({ seq }) => seq >= from && seq <= to));
    },
    unread: () => Promise.resolve({ count: 0, messages: [] }),
  } as unknown as ChatStore;
  const bus = createMemoryBus();
  const feed = createChatFeed({ bus, store, subjects }, { gapWaitMs: 20 });
  const leave = await feed.join(["chat-1"], () => {});
  try {
    // message 2 was lost and 3 came: a gap, to be filled once gapWaitMs passed
    const envelope: ChatEnvelope = {
      chat: { user_id: "alice", vendor_id: "acme" },
      audience: { to: "all" },
      frame: {
        type: "chat_message",
        chat_id: "chat-1",
        message: toClientMessage(storedRow("chat-1", 3)),
      },
      sent_at: Date.now(),
    };
    bus.publish(subjects.chat("chat-1"), new TextEncoder().encode(JSON.stringify(envelope)));
    // closed as the service shuts down: its sockets are gone, its pools about to end
    feed.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(gapReads, [], "a gap was read from the store after the feed closed");
  } finally {
    leave();
  }
});

Deno.test("a feed closed during a sweep resolves once the sweep has ended: its statements are over before the pools end", async () => {
  const asked = Promise.withResolvers<void>();
  const answer = Promise.withResolvers<never[]>();
  const store = {
    chatsCreatedWithin: () => {
      asked.resolve();
      return answer.promise;
    },
    membersAddedWithin: () => Promise.resolve([]),
    membersRemovedWithin: () => Promise.resolve([]),
  } as unknown as ChatStore;
  const feed = createChatFeed({ bus: createMemoryBus(), store, subjects: createSubjects("test") }, {
    sweepEveryMs: 10,
  });
  await within(asked.promise, 2_000, "the first sweep");
  const closedEarly = await settledWhileHeld(
    Promise.resolve(feed.close()),
    () => answer.resolve([]),
  );
  assert.equal(closedEarly, false, "the feed closed while its sweep still waited on the store");
});
