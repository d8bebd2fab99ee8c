/**
 * `/v1/ws/chats/` against a model, over many chats on two instances sharing PostgreSQL and NATS:
 * fast-check runs of two customers talking to two vendors, one of whose member is removed and
 * added again through the admin plane, with chats created (CreateChat) as the run goes, sends
 * from every side through either instance, read marks up to a seq, and chats sockets closed and
 * opened again. Each chats socket's view (its last `chats` list, then the live `chat_message`,
 * `unread_messages`, `message_read` and `messages_read` after it) must come to the model's: the
 * chats the user sees, each one's last message and unread count; the removed member is sent
 * nothing of the vendor's chats between the list that drops them and being added again; and a
 * fresh socket's list is in order of activity. CHATS_MODEL_RUNS sets the number of runs.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { startCluster } from "./support/service.ts";
import type { AdminClient } from "./support/admin_client.ts";
import type { Frame, TestSocket } from "./support/ws_client.ts";

const RUNS = Number(Deno.env.get("CHATS_MODEL_RUNS") ?? "8");

type User = "c1" | "c2" | "v1" | "v2" | "a1";
const users: readonly User[] = ["c1", "c2", "v1", "v2", "a1"];
const customers = ["c1", "c2"] as const;
const vendors = ["v1", "v2"] as const;
type Instance = 0 | 1;

type Command =
  | { kind: "create"; customer: 0 | 1; vendor: 0 | 1; instance: Instance }
  | { kind: "send"; pick: number; from: "customer" | "vendor" | "agent"; instance: Instance }
  | { kind: "read"; pick: number; side: "customer" | "vendor"; offset: number; instance: Instance }
  | { kind: "reopen"; user: User; instance: Instance }
  | { kind: "close"; user: User }
  | { kind: "member"; instance: Instance }
  | { kind: "ban"; user: User; instance: Instance }
  | { kind: "burst"; picks: number[]; user: User; instance: Instance };

const instance = fc.constantFrom<Instance>(0, 1);
const user = fc.constantFrom<User>(...users);
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant("create" as const),
      customer: fc.constantFrom<0 | 1>(0, 1),
      vendor: fc.constantFrom<0 | 1>(0, 1),
      instance,
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("send" as const),
      pick: fc.nat(),
      from: fc.constantFrom("customer" as const, "vendor" as const, "agent" as const),
      instance,
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("read" as const),
      pick: fc.nat(),
      side: fc.constantFrom("customer" as const, "vendor" as const),
      offset: fc.integer({ min: -2, max: 0 }),
      instance,
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant("reopen" as const), user, instance }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("close" as const), user }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("member" as const), instance }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("ban" as const), user, instance }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant("burst" as const),
      picks: fc.array(fc.nat(), { minLength: 2, maxLength: 8 }),
      user,
      instance,
    }),
    weight: 2,
  },
);

interface ModelChat {
  id: string;
  customer: User;
  vendor: User;
  /** each message's side and whether it was read */
  messages: Array<{ fromCustomer: boolean; read: boolean }>;
}

interface RowView {
  lastSeq: number;
  unread: number;
}

/** What a chats socket makes of its frames: its last list, then the live events after it. */
function viewOf(
  socket: TestSocket,
  customerOf: (chatId: string) => string | undefined,
  me: string,
) {
  const rows = new Map<string, RowView>();
  for (const frame of socket.frames) {
    if (frame.type === "chats") {
      rows.clear();
      for (const row of frame.chats) {
        rows.set(row.chat_id, { lastSeq: row.last_message?.seq ?? 0, unread: row.unread_count });
      }
      continue;
    }
    if (typeof frame.chat_id !== "string") continue;
    const row = rows.get(frame.chat_id) ?? { lastSeq: 0, unread: 0 };
    rows.set(frame.chat_id, row);
    const mySide = customerOf(frame.chat_id) === me;
    if (frame.type === "chat_message") row.lastSeq = Math.max(row.lastSeq, frame.message.seq);
    else if (frame.type === "unread_messages") row.unread = frame.count;
    else if (frame.type === "messages_read" || frame.type === "message_read") {
      const readerIsCustomer = customerOf(frame.chat_id) === frame.reader_id;
      if (readerIsCustomer === mySide) {
        row.unread = Math.max(0, row.unread - (frame.type === "messages_read" ? frame.count : 1));
      }
    }
  }
  return rows;
}

Deno.test("chats sockets of customers, vendors and a member removed and added again agree with a model of chats created, sends and read marks across two instances", async () => {
  await using cluster = await startCluster({
    instances: 2,
    grpc: true,
    env: { WS_RATE_PER_SECOND: "1000", WS_RATE_BURST: "1000" },
  });
  const admins: AdminClient[] = [await cluster.admin(0), await cluster.admin(1)];
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 14 }), async (commands) => {
      run++;
      const name = (who: User) => `${who}r${run}`;
      const chats: ModelChat[] = [];
      let memberOfV1 = true;
      const banned = new Set<User>();
      const sockets = new Map<User, TestSocket>();
      /** where the member's removed period began among its socket's frames (its list without v1) */
      let removedFrom: number | null = null;
      const actions: string[] = [];
      const customerOf = (chatId: string) => {
        const chat = chats.find((chat) => chat.id === chatId);
        return chat ? name(chat.customer) : undefined;
      };
      const sees = (who: User, chat: ModelChat) =>
        chat.customer === who || chat.vendor === who ||
        (who === "a1" && chat.vendor === "v1" && memberOfV1);
      const expected = (who: User) => {
        const rows = new Map<string, RowView>();
        for (const chat of chats) {
          if (!sees(who, chat)) continue;
          const customerSide = who === chat.customer;
          rows.set(chat.id, {
            lastSeq: chat.messages.length,
            unread: chat.messages.filter((message) =>
              message.fromCustomer !== customerSide && !message.read
            ).length,
          });
        }
        return rows;
      };
      const open = async (who: User, at: Instance) => {
        const socket = await cluster.openChats(name(who), at);
        if (banned.has(who)) {
          const closed = await socket.closed;
          assert.equal(closed.code, 4403, `${who} banned is refused`);
          return;
        }
        await socket.nextOfType("chats");
        sockets.set(who, socket);
        if (who === "a1" && !memberOfV1) removedFrom = 0;
      };
      const sendFrom = async (who: User, chat: ModelChat, at: Instance) => {
        const service = cluster.instances[at]!.service.chat;
        const { membership } = await service.joinChat(name(who), chat.id);
        await service.sendMessage({ user_id: name(who), membership }, {
          receiver_id: who === chat.customer ? name(chat.vendor) : name(chat.customer),
          media_type: "text",
          content: "m",
          media: null,
          client_id: null,
        });
      };
      const violations = (socket: TestSocket) => {
        if (removedFrom === null) return [];
        const v1Chats = new Set(
          chats.filter((chat) => chat.vendor === "v1").map((chat) => chat.id),
        );
        return socket.frames.slice(removedFrom).filter((frame) =>
          frame.type === "chats"
            ? frame.chats.some((row: Frame) => v1Chats.has(row.chat_id))
            : v1Chats.has(frame.chat_id)
        );
      };
      try {
        await admins[0]!.call("AddVendorMember", {
          vendor_id: name("v1"),
          user_id: name("a1"),
          role: "VENDOR_ROLE_AGENT",
        });
        const first = await cluster.main.service.chat.createChat(name("c1"), name("v1"));
        chats.push({ id: first.id, customer: "c1", vendor: "v1", messages: [] });
        for (const who of users) await open(who, (users.indexOf(who) % 2) as Instance);

        for (const step of commands) {
          actions.push(JSON.stringify(step));
          if (step.kind === "create") {
            const customer = customers[step.customer];
            const vendor = vendors[step.vendor];
            const reply = await admins[step.instance]!.call("CreateChat", {
              user_id: name(customer),
              vendor_id: name(vendor),
            });
            const id = (reply as Frame).chat?.id ?? (reply as Frame).id;
            assert.ok(typeof id === "string", `CreateChat answered ${JSON.stringify(reply)}`);
            if (!chats.some((chat) => chat.id === id)) {
              chats.push({ id, customer, vendor, messages: [] });
            }
          } else if (step.kind === "ban") {
            const by = { moderator_id: "mod-1", reason: "model" };
            if (banned.has(step.user)) {
              await admins[step.instance]!.call("UnbanUser", { user_id: name(step.user), ...by });
              banned.delete(step.user);
            } else {
              await admins[step.instance]!.call("BanUser", {
                user_id: name(step.user),
                duration_seconds: 0,
                ...by,
              });
              banned.add(step.user);
              const socket = sockets.get(step.user);
              if (socket) {
                const closed = await socket.closed;
                assert.equal(closed.code, 4403, `ban: ${step.user}'s chats socket closed`);
                sockets.delete(step.user);
              }
            }
          } else if (step.kind === "burst") {
            // sends in several chats at once, from the side that is not banned, while the
            // user's chats socket is opened again
            const sends = step.picks.flatMap((pick) => {
              const chat = chats[pick % chats.length]!;
              const who = banned.has(chat.customer) ? chat.vendor : chat.customer;
              if (banned.has(who)) return [];
              chat.messages.push({ fromCustomer: who === chat.customer, read: false });
              return [sendFrom(who, chat, step.instance)];
            });
            sockets.get(step.user)?.close();
            sockets.delete(step.user);
            await Promise.all([...sends, open(step.user, step.instance)]);
          } else if (step.kind === "send" || step.kind === "read") {
            const chat = chats[step.pick % chats.length]!;
            const who: User = step.kind === "send"
              ? step.from === "customer"
                ? chat.customer
                : step.from === "agent" && chat.vendor === "v1" && memberOfV1
                ? "a1"
                : chat.vendor
              : step.side === "customer"
              ? chat.customer
              : chat.vendor;
            if (banned.has(who)) continue;
            if (step.kind === "send") {
              chat.messages.push({ fromCustomer: who === chat.customer, read: false });
              await sendFrom(who, chat, step.instance);
            } else {
              const service = cluster.instances[step.instance]!.service.chat;
              const { membership } = await service.joinChat(name(who), chat.id);
              const actor = { user_id: name(who), membership };
              const seq = Math.max(0, chat.messages.length + step.offset);
              await service.readUpTo(actor, seq);
              chat.messages.forEach((message, index) => {
                if (index < seq && message.fromCustomer !== (who === chat.customer)) {
                  message.read = true;
                }
              });
            }
          } else if (step.kind === "reopen") {
            sockets.get(step.user)?.close();
            await open(step.user, step.instance);
          } else if (step.kind === "close") {
            sockets.get(step.user)?.close();
            sockets.delete(step.user);
          } else {
            const member = { vendor_id: name("v1"), user_id: name("a1") };
            const socket = sockets.get("a1");
            if (memberOfV1) {
              await admins[step.instance]!.call("RemoveVendorMember", member);
              memberOfV1 = false;
              removedFrom = null;
              if (socket) {
                const v1Chats = chats.filter((chat) => chat.vendor === "v1").map((chat) => chat.id);
                const list = await socket.next(
                  (frame) =>
                    frame.type === "chats" &&
                    !frame.chats.some((row: Frame) => v1Chats.includes(row.chat_id)),
                  "the member's list without the vendor's chats",
                );
                removedFrom = socket.frames.indexOf(list);
              } else removedFrom = null;
            } else {
              if (socket && removedFrom !== null) {
                assert.deepEqual(violations(socket), [], `removed: ${actions.join("; ")}`);
              }
              removedFrom = null;
              await admins[step.instance]!.call("AddVendorMember", {
                ...member,
                role: "VENDOR_ROLE_AGENT",
              });
              memberOfV1 = true;
            }
          }
        }

        // every open chats socket comes to the model's view
        for (const [who, socket] of sockets) {
          const truth = expected(who);
          const deadline = Date.now() + 5_000;
          let view = viewOf(socket, customerOf, name(who));
          while (!sameRows(view, truth) && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            view = viewOf(socket, customerOf, name(who));
          }
          assert.deepEqual(
            Object.fromEntries(view),
            Object.fromEntries(truth),
            `${who}'s view: ${actions.join("; ")}; frames ${
              socket.frames.map((frame) =>
                `${frame.type}:${frame.chat_id ?? frame.chats?.length ?? ""}:${
                  frame.message?.seq ?? frame.count ?? ""
                }`
              ).join(", ")
            }`,
          );
          if (who === "a1" && removedFrom !== null) {
            assert.deepEqual(violations(socket), [], `removed: ${actions.join("; ")}`);
          }
        }
        // a fresh list: the chats seen, newest activity first, each with its figures
        for (const who of users) {
          if (banned.has(who)) continue;
          const socket = await cluster.openChats(name(who), 1);
          try {
            const list = await socket.nextOfType("chats");
            const truth = expected(who);
            assert.deepEqual(
              new Set(list.chats.map((row: Frame) => row.chat_id)),
              new Set(truth.keys()),
              `${who}'s fresh list: ${actions.join("; ")}`,
            );
            for (let index = 1; index < list.chats.length; index++) {
              const [newer, older] = [list.chats[index - 1], list.chats[index]];
              assert.ok(
                newer.updated_at > older.updated_at ||
                  (newer.updated_at === older.updated_at && newer.chat_id > older.chat_id),
                `${who}'s fresh list in order: ${JSON.stringify(list.chats)}`,
              );
            }
            for (const row of list.chats) {
              assert.deepEqual(
                { lastSeq: row.last_message?.seq ?? 0, unread: row.unread_count },
                truth.get(row.chat_id),
                `${who}'s fresh row: ${actions.join("; ")}`,
              );
            }
          } finally {
            socket.close();
          }
        }
      } finally {
        for (const socket of sockets.values()) socket.close();
      }
    }),
    { numRuns: RUNS },
  );
});

function sameRows(view: Map<string, RowView>, truth: Map<string, RowView>): boolean {
  if (view.size !== truth.size) return false;
  for (const [id, row] of truth) {
    const seen = view.get(id);
    if (!seen || seen.lastSeq !== row.lastSeq || seen.unread !== row.unread) return false;
  }
  return true;
}
