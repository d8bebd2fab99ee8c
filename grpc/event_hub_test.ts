import assert from "node:assert/strict";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import { createChatPublisher } from "../chat/chat_publisher.ts";
import type { ChatEnvelope } from "../chat/events.ts";
import { storedMessage } from "../tests/support/stored_messages.ts";
import type { ProtoChatEvent } from "./convert.ts";
import { createEventHub, WATCH_GAP_WAIT_MS } from "./event_hub.ts";

/** A hub on an in-memory bus, and the publisher whose events it hears; errors thrown. */
function openHub() {
  const bus = createMemoryBus();
  const subjects = createSubjects("hub-test");
  const publisher = createChatPublisher({ bus, subjects });
  const hub = createEventHub({
    bus,
    onError: (error) => {
      throw error;
    },
  });
  return { subjects, publisher, hub };
}

/** Message `seq` of `chatId`, as its publisher sends it. */
function messageIn(chatId: string, seq: number): ChatEnvelope {
  return {
    chat: { user_id: "cust-1", vendor_id: "vend-1" },
    audience: { to: "all" },
    frame: { type: "chat_message", chat_id: chatId, message: storedMessage(chatId, seq) },
    sent_at: 1_000 + seq,
  };
}

Deno.test("the event hub passes a message on once: not when its publisher sends it again after a NATS outage", () => {
  const { subjects, publisher, hub } = openHub();
  const heard: number[] = [];
  const leave = hub.subscribe(subjects.allChats, {
    event(envelope) {
      if (envelope.frame.type === "chat_message") heard.push(envelope.frame.message.seq);
    },
    lost: () => assert.fail("nothing is lost"),
  });
  const message = (seq: number) => messageIn("c1", seq);
  publisher.publish("c1", message(1));
  publisher.publish("c1", message(2));
  publisher.republishRecent();
  publisher.publish("c1", message(3));
  leave();
  assert.deepEqual(heard, [1, 2, 3]);
  assert.equal(hub.size, 0, "the last listener's leave ends the subscription");
});

Deno.test("the event hub converts each event once for every listener of its subject", () => {
  const bus = createMemoryBus();
  const subjects = createSubjects("hub-test");
  const hub = createEventHub({
    bus,
    onError: (error) => {
      throw error;
    },
  });
  const heard: ProtoChatEvent[][] = [[], []];
  const leaves = heard.map((events) =>
    hub.subscribe(subjects.allChats, {
      event: (_envelope, event) => events.push(event),
      lost: () => assert.fail("nothing is lost"),
    })
  );
  createChatPublisher({ bus, subjects }).publish("c1", {
    chat: { user_id: "cust-1", vendor_id: "vend-1" },
    audience: { to: "all" },
    frame: { type: "chat_message", chat_id: "c1", message: storedMessage("c1", 1) },
    sent_at: 1_001,
  });
  for (const leave of leaves) leave();
  const [first, second] = heard;
  assert.equal(first?.length, 1);
  assert.equal(first[0]?.type, "CHAT_EVENT_TYPE_CHAT_MESSAGE");
  assert.equal(first[0]?.seq, 1);
  // the same object: converted once, not once per stream
  assert.equal(second?.[0], first[0]);
});

Deno.test("the event hub streams each chat's messages in seq order, and events about a message after it", async () => {
  const { subjects, publisher, hub } = openHub();
  const heard: string[] = [];
  const leave = hub.subscribe(subjects.allChats, {
    event(envelope) {
      const { frame } = envelope;
      if (frame.type === "chat_message") heard.push(`${frame.chat_id} ${frame.message.seq}`);
      if (frame.type === "message_deleted") heard.push(`${frame.chat_id} deleted ${frame.seq}`);
    },
    lost: () => assert.fail("nothing is lost"),
  });
  const chat = { user_id: "cust-1", vendor_id: "vend-1" };
  const deleted = (chatId: string, seq: number): ChatEnvelope => ({
    chat,
    audience: { to: "all" },
    frame: {
      type: "message_deleted",
      chat_id: chatId,
      message_id: `${chatId}-${seq}`,
      seq,
      deleted_by: "cust-1",
      deleted_at: new Date().toISOString(),
    },
    sent_at: 2_000 + seq,
  });
  // two instances published 2 and 3 of c1; 3 (and its deletion) reached the bus first
  publisher.publish("c1", messageIn("c1", 1));
  publisher.publish("c1", messageIn("c1", 3));
  publisher.publish("c1", deleted("c1", 3));
  publisher.publish("c2", messageIn("c2", 7));
  publisher.publish("c1", messageIn("c1", 2));
  assert.deepEqual(heard, ["c1 1", "c2 7", "c1 2", "c1 3", "c1 deleted 3"]);
  // a message never heard of is waited for a moment, then taken as lost
  publisher.publish("c1", messageIn("c1", 5));
  assert.deepEqual(heard.slice(5), []);
  await new Promise((resolve) => setTimeout(resolve, WATCH_GAP_WAIT_MS + 100));
  assert.deepEqual(heard.slice(5), ["c1 5"]);
  publisher.publish("c1", messageIn("c1", 6));
  assert.deepEqual(heard.slice(6), ["c1 6"]);
  leave();
});

Deno.test("the event hub keeps a chat's messages in seq order after the chat was quiet while others were not", () => {
  const { subjects, publisher, hub } = openHub();
  const heard: string[] = [];
  const leave = hub.subscribe(subjects.allChats, {
    event(envelope) {
      const { frame } = envelope;
      if (frame.type === "chat_message") heard.push(`${frame.chat_id} ${frame.message.seq}`);
    },
    lost: () => assert.fail("nothing is lost"),
  });
  const realNow = Date.now;
  try {
    publisher.publish("c1", messageIn("c1", 1));
    // c1 quiet for two minutes (most chats are, most of the time) while c2 talks
    const later = realNow() + 120_000;
    Date.now = () => later;
    publisher.publish("c2", messageIn("c2", 7));
    // then its customer and vendor send at once from two instances: 3 reaches the bus first
    publisher.publish("c1", messageIn("c1", 3));
    publisher.publish("c1", messageIn("c1", 2));
    assert.deepEqual(heard, ["c1 1", "c2 7", "c1 2", "c1 3"]);
  } finally {
    Date.now = realNow;
    leave();
  }
});

Deno.test("the event hub waits WATCH_GAP_WAIT_MS for each missing message, not from when an earlier gap began", async () => {
  const { subjects, publisher, hub } = openHub();
  const heard: number[] = [];
  const leave = hub.subscribe(subjects.chat("c1"), {
    event(envelope) {
      const { frame } = envelope;
      if (frame.type === "chat_message") heard.push(frame.message.seq);
    },
    lost: () => assert.fail("nothing is lost"),
  });
  const message = (seq: number) => messageIn("c1", seq);
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  try {
    publisher.publish("c1", message(1));
    publisher.publish("c1", message(3)); // 2 is slow to come
    await sleep(WATCH_GAP_WAIT_MS * 0.7);
    publisher.publish("c1", message(5)); // and so, a moment later, is 4
    publisher.publish("c1", message(2));
    assert.deepEqual(heard, [1, 2, 3]);
    // past a second from when 2 went missing, but 4 has been missing far less
    await sleep(WATCH_GAP_WAIT_MS * 0.5);
    assert.deepEqual(heard, [1, 2, 3], "5 still waits for 4");
    publisher.publish("c1", message(4));
    assert.deepEqual(heard, [1, 2, 3, 4, 5]);
    // 6 never comes: events that go out meanwhile (read marks of messages out) do not put off
    // the wait for it
    publisher.publish("c1", message(7));
    for (let i = 0; i < 4; i++) {
      publisher.publish("c1", {
        ...message(0),
        frame: {
          type: "message_read",
          chat_id: "c1",
          message_id: "c1-1",
          seq: 1,
          reader_id: "vend-1",
          read_at: new Date().toISOString(),
        },
      });
      await sleep(WATCH_GAP_WAIT_MS * 0.3);
    }
    assert.deepEqual(heard, [1, 2, 3, 4, 5, 7], "7 went out once 6 was a second missing");
  } finally {
    leave();
  }
});
