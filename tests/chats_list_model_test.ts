/**
 * The chats list of `/v1/ws/chats/` against a model, while its read is held up: fast-check runs
 * of the vendor's sends and deletions (on another instance) and the customer's sends and read
 * marks (on another device) made while the socket's first list is read. The list, and the live
 * events held meanwhile that follow it, must leave the socket's view of the chat (its last
 * message, and the last unread figure it was given) equal to the model: no push older than the
 * list's own figures may come after it. CHATS_LIST_RUNS sets the number of runs.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { startCluster } from "./support/service.ts";
import { acked, askUnread, joinChat, sendText } from "./support/steps.ts";
import type { Frame } from "./support/ws_client.ts";

const RUNS = Number(Deno.env.get("CHATS_LIST_RUNS") ?? "15");

type Command =
  | { kind: "vendor_send" }
  | { kind: "customer_send" }
  | { kind: "read_up_to"; offset: number }
  | { kind: "read"; pick: number }
  | { kind: "delete"; pick: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("vendor_send" as const) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant("customer_send" as const) }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant("read_up_to" as const),
      offset: fc.integer({ min: -2, max: 0 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant("read" as const), pick: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("delete" as const), pick: fc.nat() }), weight: 1 },
);

interface Modelled {
  id: string;
  seq: number;
  fromVendor: boolean;
  read: boolean;
  deleted: boolean;
}

Deno.test("a chats list read while messages, read marks and deletions go on is followed by no push older than its own figures", async () => {
  await using cluster = await startCluster({
    instances: 2,
    env: { WS_RATE_PER_SECOND: "1000", WS_RATE_BURST: "1000" },
  });
  const service = cluster.main.service.chat;
  // the list read of the first instance's sockets waits for `gate` while a run's actions go on
  const listChats = service.listChats;
  let gate: { entered: () => void; open: Promise<void> } | null = null;
  service.listChats = async (...args) => {
    const held = gate;
    gate = null;
    if (held) {
      held.entered();
      await held.open;
    }
    return await listChats(...args);
  };
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 12 }), async (commands) => {
      run++;
      const customer = `c${run}`;
      const vendor = `v${run}`;
      const chat = await service.createChat(customer, vendor);
      const device = await joinChat(cluster, customer, chat.id, 0);
      const vendorSocket = await joinChat(cluster, vendor, chat.id, 1);
      let open!: () => void;
      let entered!: () => void;
      const inRead = new Promise<void>((resolve) => entered = resolve);
      gate = { entered, open: new Promise<void>((resolve) => open = resolve) };
      const chats = await cluster.openChats(customer, 0);
      const model: Modelled[] = [];
      const actions: string[] = [];
      try {
        await inRead;
        for (const step of commands) {
          if (step.kind === "vendor_send" || step.kind === "customer_send") {
            const fromVendor = step.kind === "vendor_send";
            const sent = await sendText(
              fromVendor ? vendorSocket : device,
              fromVendor ? customer : vendor,
              `m${model.length + 1}`,
            );
            model.push({ id: sent.id, seq: sent.seq, fromVendor, read: false, deleted: false });
            actions.push(`${step.kind} seq ${sent.seq}`);
            // the first instance heard it (its sockets all had it, the chats socket held it)
            const heard = await device.next(
              (frame) => frame.type === "chat_message" && frame.message.seq === sent.seq,
              "the message on the device",
            );
            if (fromVendor) {
              await device.next(
                (frame) =>
                  frame.type === "unread_messages" &&
                  device.frames.indexOf(frame) > device.frames.indexOf(heard),
                "the push on the device",
              );
            }
          } else if (step.kind === "read_up_to") {
            const seq = Math.max(0, model.length + step.offset);
            const marked = model.filter((message) =>
              message.fromVendor && !message.read && !message.deleted && message.seq <= seq
            );
            await acked(device, { action: "read_up_to", seq });
            actions.push(`read_up_to ${seq}`);
            for (const message of marked) message.read = true;
            if (marked.length > 0) {
              await device.next((frame) => frame.type === "messages_read", "messages_read");
            }
          } else if (step.kind === "read") {
            const theirs = model.filter((message) => message.fromVendor && !message.deleted);
            if (theirs.length === 0) continue;
            const target = theirs[step.pick % theirs.length]!;
            await acked(device, { action: "read_message", message_id: target.id });
            actions.push(`read seq ${target.seq}`);
            if (!target.read) {
              target.read = true;
              await device.next(
                (frame) => frame.type === "message_read" && frame.message_id === target.id,
                "message_read",
              );
            }
          } else {
            const own = model.filter((message) => message.fromVendor && !message.deleted);
            if (own.length === 0) continue;
            const target = own[step.pick % own.length]!;
            await acked(vendorSocket, { action: "delete_message", message_id: target.id });
            actions.push(`delete seq ${target.seq}`);
            target.deleted = true;
            await device.next(
              (frame) => frame.type === "message_deleted" && frame.message_id === target.id,
              "message_deleted",
            );
          }
        }
        open();
        const list = await chats.nextOfType("chats");
        const answer = await askUnread(chats, chat.id);
        const row = list.chats.find((item: Frame) => item.chat_id === chat.id);
        assert.ok(row, "the chat is listed");
        // the socket's view: the list, then the live events that followed it, in order
        let count = row.unread_count;
        let lastSeq = row.last_message?.seq ?? 0;
        const after = chats.frames.slice(
          chats.frames.indexOf(list) + 1,
          chats.frames.indexOf(answer),
        );
        for (const frame of after) {
          if (frame.chat_id !== chat.id) continue;
          if (frame.type === "unread_messages") count = frame.count;
          if (frame.type === "chat_message") lastSeq = Math.max(lastSeq, frame.message.seq);
        }
        const unread = model.filter((message) =>
          message.fromVendor && !message.read && !message.deleted
        ).length;
        const story = `${actions.join("; ")}; frames after the list: ${
          after.map((frame) => frame.type + (frame.count ?? frame.message?.seq ?? "")).join(", ")
        }`;
        assert.equal(answer.count, unread, `unread_message: ${story}`);
        assert.equal(lastSeq, model.length, `last message: ${story}`);
        assert.equal(count, unread, `unread count shown after the list: ${story}`);
      } finally {
        open();
        gate = null;
        for (const socket of [device, vendorSocket, chats]) await socket.close();
      }
    }),
    { numRuns: RUNS },
  );
});
