/**
 * Unread figures against a model, over real sockets on two instances sharing PostgreSQL and
 * NATS: generated runs of sends, read marks (one by one and up to a seq, backwards, past the
 * end), edits and deletions from both sides. After each send every socket of the receiver's side
 * is pushed the exact count and newest unread; at the end `unread_message` on either endpoint
 * and the chats list agree with the model, for both sides. Then the same actions all at once,
 * from two devices of each side: the counters stay equal to the unread stored, and the pushes
 * after the race are exact. UNREAD_RUNS sets the number of runs of each.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { startCluster } from "./support/service.ts";
import { acked, askUnread, joinAllChats, joinChat, sendText } from "./support/steps.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

const RUNS = Number(Deno.env.get("UNREAD_RUNS") ?? "12");

type Side = "customer" | "vendor";
const other = (side: Side): Side => side === "customer" ? "vendor" : "customer";

interface Modelled {
  id: string;
  seq: number;
  from: Side;
  read: boolean;
  deleted: boolean;
}

type Command =
  | { kind: "send"; side: Side }
  | { kind: "read"; side: Side; pick: number }
  | { kind: "read_up_to"; side: Side; offset: number }
  | { kind: "delete"; side: Side; pick: number }
  | { kind: "edit"; side: Side; pick: number };

const side = fc.constantFrom<Side>("customer", "vendor");
const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("send" as const), side }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant("read" as const), side, pick: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant("read_up_to" as const),
      side,
      offset: fc.integer({ min: -4, max: 2 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("delete" as const), side, pick: fc.nat() }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant("edit" as const), side, pick: fc.nat() }), weight: 1 },
);

function unreadOf(model: Modelled[], reader: Side) {
  const unread = model.filter((message) =>
    message.from !== reader && !message.read && !message.deleted
  );
  return { count: unread.length, seqs: unread.slice(-50).map((message) => message.seq) };
}

Deno.test("unread counts, pushes and the chats list agree with a model of sends, reads, edits and deletions across two instances", async () => {
  await using cluster = await startCluster({
    instances: 2,
    env: { WS_RATE_PER_SECOND: "1000", WS_RATE_BURST: "1000" },
  });
  const service = cluster.main.service.chat;
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 30 }), async (commands) => {
      run++;
      const customer = `c${run}`;
      const vendor = `v${run}`;
      const agent = `a${run}`;
      const chat = await service.createChat(customer, vendor);
      await service.addVendorMember(vendor, agent, "agent");
      const sockets: Record<Side, TestSocket[]> = { customer: [], vendor: [] };
      const allChats: Record<Side, TestSocket> = {} as Record<Side, TestSocket>;
      try {
        sockets.customer.push(await joinChat(cluster, customer, chat.id, 0));
        sockets.customer.push(allChats.customer = await joinAllChats(cluster, customer, 1));
        sockets.vendor.push(await joinChat(cluster, vendor, chat.id, 1));
        sockets.vendor.push(await joinChat(cluster, agent, chat.id, 0));
        sockets.vendor.push(allChats.vendor = await joinAllChats(cluster, agent, 1));
        const actorOf = (of: Side) => sockets[of][of === "customer" ? 0 : 1]!;
        const receiverOf = (of: Side) => of === "customer" ? vendor : customer;
        const model: Modelled[] = [];
        const actions: string[] = [];
        const act = async (socket: TestSocket, frame: Frame) => {
          const reply = await socket.request(
            socket === allChats.customer || socket === allChats.vendor
              ? { ...frame, chat_id: chat.id }
              : frame,
          );
          actions.push(`${JSON.stringify(frame)} -> ${reply.type}${reply.code ?? ""}`);
          return reply;
        };

        for (const step of commands) {
          const actor = actorOf(step.side);
          if (step.kind === "send") {
            const sent = await sendText(actor, receiverOf(step.side), `m${model.length + 1}`);
            actions.push(`${step.side} sends seq ${sent.seq}`);
            model.push({
              id: sent.id,
              seq: sent.seq,
              from: step.side,
              read: false,
              deleted: false,
            });
            const truth = unreadOf(model, other(step.side));
            for (const socket of sockets[other(step.side)]) {
              const push = await socket.next(
                (frame) => frame.type === "unread_messages" && frame.chat_id === chat.id,
                "unread push",
              );
              assert.deepEqual(
                { count: push.count, seqs: push.messages.map((message: Frame) => message.seq) },
                truth,
                `push after seq ${sent.seq}: ${actions.join("; ")}`,
              );
            }
          } else if (step.kind === "read") {
            if (model.length === 0) continue;
            const target = model[step.pick % model.length]!;
            const reply = await act(actor, { action: "read_message", message_id: target.id });
            if (target.deleted) assert.equal(reply.code, "not_found");
            else if (target.from === step.side) assert.equal(reply.code, "forbidden");
            else {
              assert.equal(reply.type, "ack");
              target.read = true;
            }
          } else if (step.kind === "read_up_to") {
            const seq = Math.max(0, model.length + step.offset);
            const reply = await act(actor, { action: "read_up_to", seq });
            assert.equal(reply.type, "ack", JSON.stringify(reply));
            for (const message of model) {
              if (message.seq <= seq && message.from !== step.side && !message.deleted) {
                message.read = true;
              }
            }
          } else {
            const own = model.filter((message) => message.from === step.side && !message.deleted);
            if (own.length === 0) continue;
            const target = own[step.pick % own.length]!;
            const frame = step.kind === "delete"
              ? { action: "delete_message", message_id: target.id }
              : { action: "edit_message", message_id: target.id, content: `e${step.pick}` };
            const reply = await act(actor, frame);
            assert.equal(reply.type, "ack", JSON.stringify(reply));
            if (step.kind === "delete") target.deleted = true;
          }
        }

        for (const reader of ["customer", "vendor"] as const) {
          const truth = unreadOf(model, reader);
          for (const socket of sockets[reader]) {
            const chatsSocket = socket === allChats[reader];
            const answer = await askUnread(socket, chatsSocket ? chat.id : undefined);
            assert.deepEqual(
              { count: answer.count, seqs: answer.messages.map((message: Frame) => message.seq) },
              truth,
              `unread_message of the ${reader}: ${actions.join("; ")}`,
            );
          }
          await acked(allChats[reader], { action: "list_chats" });
          const list = await allChats[reader].nextOfType("chats");
          const summary = list.chats.find((item: Frame) => item.chat_id === chat.id);
          assert.equal(summary.unread_count, truth.count, `chats list of the ${reader}`);
        }
      } finally {
        for (const socket of [...sockets.customer, ...sockets.vendor]) await socket.close();
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("unread counters stay equal to the unread messages stored when sends, read marks from two devices of a side, and deletions race on two instances", async () => {
  await using cluster = await startCluster({
    instances: 2,
    env: { WS_RATE_PER_SECOND: "1000", WS_RATE_BURST: "1000" },
  });
  const service = cluster.main.service.chat;
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(command, fc.nat({ max: 1 })), { minLength: 5, maxLength: 40 }),
      async (commands) => {
        run++;
        const customer = `c${run}`;
        const vendor = `v${run}`;
        const agent = `a${run}`;
        const chat = await service.createChat(customer, vendor);
        await service.addVendorMember(vendor, agent, "agent");
        const sockets: Record<Side, TestSocket[]> = { customer: [], vendor: [] };
        try {
          sockets.customer.push(await joinChat(cluster, customer, chat.id, 0));
          sockets.customer.push(await joinChat(cluster, customer, chat.id, 1));
          sockets.vendor.push(await joinChat(cluster, vendor, chat.id, 1));
          sockets.vendor.push(await joinChat(cluster, agent, chat.id, 0));
          // a few messages each way first, for the marks and deletions to race with
          const sent: Array<{ id: string; from: Side }> = [];
          for (let n = 0; n < 4; n++) {
            for (const from of ["customer", "vendor"] as const) {
              const message = await sendText(
                sockets[from][0]!,
                from === "customer" ? vendor : customer,
                `s${n}`,
              );
              sent.push({ id: message.id, from });
            }
          }
          const replies = commands.map(([step, device]) => {
            const socket = sockets[step.side][device]!;
            const own = sent.filter((message) => message.from === step.side);
            const theirs = sent.filter((message) => message.from !== step.side);
            switch (step.kind) {
              case "send":
                return socket.request({
                  action: "send_message",
                  receiver_id: step.side === "customer" ? vendor : customer,
                  media_type: "text",
                  content: "raced",
                });
              case "read":
                return socket.request({
                  action: "read_message",
                  message_id: theirs[step.pick % theirs.length]!.id,
                });
              case "read_up_to":
                return socket.request({ action: "read_up_to", seq: 8 + step.offset * 2 });
              case "delete":
                return socket.request({
                  action: "delete_message",
                  message_id: own[step.pick % own.length]!.id,
                });
              case "edit":
                return socket.request({
                  action: "edit_message",
                  message_id: own[step.pick % own.length]!.id,
                  content: `e${step.pick}`,
                });
            }
          });
          await Promise.all(replies);
          // every action answered: one more message each way, whose pushes are then exact (the
          // race's read marks and deletions may still be on their way to the other instance)
          const pushes: Record<Side, Frame[]> = { customer: [], vendor: [] };
          for (const from of ["customer", "vendor"] as const) {
            const last = await sendText(
              sockets[from][0]!,
              from === "customer" ? vendor : customer,
              "last",
            );
            for (const socket of sockets[other(from)]) {
              const delivered = await socket.next(
                (frame) => frame.type === "chat_message" && frame.message.seq === last.seq,
                "the last message",
              );
              const at = socket.frames.indexOf(delivered);
              pushes[other(from)].push(
                await socket.next(
                  (frame) => frame.type === "unread_messages" && socket.frames.indexOf(frame) > at,
                  "the push after the last message",
                ),
              );
            }
          }
          const page = await sockets.customer[0]!.request({
            action: "load_latest_chat",
            limit: 100,
          });
          assert.equal(page.type, "ack");
          const history = (await sockets.customer[0]!.nextOfType("latest_chat")).messages;
          for (const reader of ["customer", "vendor"] as const) {
            const unread = history.filter((message: Frame) =>
              (message.sender_id === customer) === (reader === "vendor") && !message.is_read &&
              !message.deleted
            );
            // each push came after the other side's last message, which changed nothing after it
            for (const push of pushes[reader]) {
              assert.deepEqual(
                {
                  count: push.count,
                  seqs: push.messages.map((message: Frame) => message.seq),
                },
                { count: unread.length, seqs: unread.map((message: Frame) => message.seq) },
                `the ${reader}'s push after the last message`,
              );
            }
            for (const socket of sockets[reader]) {
              const answer = await askUnread(socket);
              assert.deepEqual(
                answer.messages.map((message: Frame) => message.seq),
                unread.map((message: Frame) => message.seq),
              );
              assert.equal(answer.count, unread.length, `the ${reader}'s count`);
            }
          }
        } finally {
          for (const socket of [...sockets.customer, ...sockets.vendor]) socket.close();
        }
      },
    ),
    { numRuns: RUNS },
  );
});
