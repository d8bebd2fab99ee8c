import assert from "node:assert/strict";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { createSubjects } from "../bus/subjects.ts";
import { storedMessage } from "../tests/support/stored_messages.ts";
import { createChatPublisher } from "./chat_publisher.ts";
import type { Delivery } from "./delivery.ts";
import { type ChatEnvelope, chatEnvelopeSchema } from "./events.ts";

const subjects = createSubjects("test");

function chatMessage(chatId: string, seq: number): ChatEnvelope {
  return {
    chat: { user_id: "cust-1", vendor_id: "vend-1" },
    audience: { to: "all" },
    frame: { type: "chat_message", chat_id: chatId, message: storedMessage(chatId, seq) },
    unread: { side: "customer", count: seq, seqs: [seq] },
    sent_at: 1_000 + seq,
  };
}

/** A publisher on the in-process bus, with every payload published on `chatIds` as it came. */
function publisherHeardOn(chatIds: string[]) {
  const bus = createMemoryBus();
  const publisher = createChatPublisher({ bus, subjects });
  const heard: Uint8Array[] = [];
  const handedBack: Array<Delivery | undefined> = [];
  for (const chatId of chatIds) {
    bus.subscribe(subjects.chat(chatId), (payload) => {
      heard.push(payload);
      handedBack.push(publisher.beingPublished(payload));
    });
  }
  return { publisher, heard, handedBack };
}

Deno.test("publish() puts the envelope on the chat's subject as one payload that reads back as it, and hands the same frame text to this instance", () => {
  const { publisher, heard, handedBack } = publisherHeardOn(["c1"]);
  const envelope = chatMessage("c1", 1);
  const frame = JSON.stringify(envelope.frame);
  publisher.publish("c1", envelope, { frame, unreadMessages: ["{}"] });

  assert.equal(heard.length, 1);
  const payload = heard[0]!;
  const read = chatEnvelopeSchema.parse(JSON.parse(new TextDecoder().decode(payload)));
  assert.deepEqual(read, envelope);
  const own = handedBack[0];
  assert.equal(own?.envelope, envelope);
  assert.equal(own?.text, frame);
  assert.deepEqual(own?.unreadMessages, ["{}"]);
  assert.equal(publisher.beingPublished(payload), undefined, "once published, it is not ours");
});

Deno.test("republishRecent() sends each chat's newest message again, marked republished, and none of its other events", () => {
  const { publisher, heard } = publisherHeardOn(["c1", "c2"]);
  publisher.publish("c1", chatMessage("c1", 1));
  publisher.publish("c2", chatMessage("c2", 1));
  publisher.publish("c1", chatMessage("c1", 2));
  publisher.publish("c1", {
    ...chatMessage("c1", 2),
    frame: { type: "typing", chat_id: "c1", user_id: "cust-1", is_typing: true },
  });
  heard.length = 0;

  publisher.republishRecent();
  const read = heard.map((payload) =>
    chatEnvelopeSchema.parse(JSON.parse(new TextDecoder().decode(payload)))
  );
  assert.deepEqual(
    read,
    [chatMessage("c2", 1), chatMessage("c1", 2)].map((each) => ({ ...each, republished: true })),
    "least recently active first, marked as sent again",
  );
});

Deno.test("publish() puts a messages_read on the bus with up_to_marked, as other instances must hold it", () => {
  const { publisher, heard } = publisherHeardOn(["c1"]);
  const envelope: ChatEnvelope = {
    chat: { user_id: "cust-1", vendor_id: "vend-1" },
    audience: { to: "all" },
    frame: {
      type: "messages_read",
      chat_id: "c1",
      reader_id: "vend-1",
      up_to_seq: 4,
      count: 2,
      read_at: "2026-12-06T10:00:00.000Z",
    },
    sent_at: 1_000,
    up_to_marked: true,
  };
  publisher.publish("c1", envelope);
  const read = chatEnvelopeSchema.parse(JSON.parse(new TextDecoder().decode(heard[0]!)));
  assert.deepEqual(read, envelope);
});
