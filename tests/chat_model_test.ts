/**
 * Model-based test of one chat's whole story: fast-check generates sequences of what a customer,
 * a vendor and the vendor's member do, each with up to two chat sockets and a /v1/ws/chats/ one,
 * on two instances sharing PostgreSQL and NATS: sends with and without client_id (retried, and
 * at once), edits, deletions, read marks, typing, leaving and coming back, history pages at
 * their bounds, long histories, and through the admin plane deletions, bans, disconnects and the
 * member's removal. Operations run one by one against a plain model of what everyone should see,
 * or several at once ("chaos"), whose outcome the store then tells the model. After each sequence
 * every socket's view, rebuilt from the frames it received, is compared with the model, and so
 * are a fresh connection's history and every unread count. MODEL_RUNS sets the number of runs
 * (brief in CI; `MODEL_RUNS=500 deno test ... tests/chat_model_test.ts` for long).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { startCluster, type TestCluster } from "./support/service.ts";
import type { AdminClient } from "./support/admin_client.ts";
import type { CloseInfo, Frame, TestSocket } from "./support/ws_client.ts";
import { within } from "./support/wait.ts";
import { seedMessages } from "./support/steps.ts";

const RUNS = Number(Deno.env.get("MODEL_RUNS") ?? "20");

type Who = "customer" | "vendor" | "agent";
type Side = "customer" | "vendor";
const sideOf = (who: Who): Side => who === "customer" ? "customer" : "vendor";
const everyone = ["customer", "vendor", "agent"] as const;

interface ModelMessage {
  id: string;
  seq: number;
  sender: Who;
  receiver: Who;
  content: string | null;
  edited: boolean;
  deleted: boolean;
  read: boolean;
  clientId: string | null;
}

/** What a socket made of the frames it received. */
interface View {
  messages: Map<number, Frame>;
  /** seqs heard twice as chat_message, or a chat_message for a seq its first page held */
  duplicates: number[];
  /** chat_message seqs out of order (after a higher one) */
  disorder: number[];
  /** the first seq it can know of: its first page's, when older ones were left out */
  from?: number;
  /** the index of its first page among the socket's frames */
  startedAt?: number;
}

interface Send {
  kind: "send";
  who: Who;
  slot: number;
  text: string;
  clientId: string | null;
  /** the member, not the vendor, is the receiver of a customer's message */
  toAgent: boolean;
}

type Op =
  | Send
  | { kind: "burst"; sends: Send[] }
  /** operations at once, whose outcome the store then tells the model */
  | { kind: "chaos"; ops: Op[] }
  | { kind: "moderate"; pick: number; instance: number }
  /** messages stored through the service (no rate limit), for long histories */
  | { kind: "seed"; who: Who; count: number }
  | { kind: "edit"; who: Who; slot: number; pick: number; text: string }
  | { kind: "delete"; who: Who; slot: number; pick: number }
  | { kind: "read"; who: Who; slot: number; pick: number }
  | { kind: "read_up_to"; who: Who; slot: number; pick: number }
  | { kind: "typing"; who: Who; slot: number; on: boolean }
  | { kind: "close"; who: Who; slot: number }
  | { kind: "open"; who: Who; slot: number; instance: number }
  /** through the admin plane of `instance` */
  | { kind: "sanction"; what: "ban" | "unban" | "disconnect"; who: Who; instance: number }
  | { kind: "membership"; what: "remove" | "add"; instance: number }
  | {
    kind: "history";
    who: Who;
    slot: number;
    limit: number | undefined;
    before: number | undefined;
    after: number | undefined;
  };

const who = fc.constantFrom<Who>("customer", "vendor", "agent");
/** 0 and 1: sockets on /v1/ws/chat/{id}/; 2: a socket on /v1/ws/chats/ */
const slot = fc.integer({ min: 0, max: 2 });
const text = fc.tuple(
  fc.constantFrom("", " ", "\n\t"),
  fc.stringMatching(/^[a-z][a-z0-9 ]{0,10}[a-z0-9]$/),
  fc.constantFrom("", "  ", "\n"),
).map(([before, words, after]) => before + words + after);
const pick = fc.nat({ max: 60 });
const send: fc.Arbitrary<Send> = fc.record({
  kind: fc.constant("send" as const),
  who,
  slot,
  text,
  clientId: fc.option(fc.constantFrom("k1", "k2", "k3", "k4"), { nil: null }),
  toAgent: fc.boolean(),
});
const amendment: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("edit" as const), who, slot, pick, text }),
  fc.record({ kind: fc.constant("delete" as const), who, slot, pick }),
  fc.record({ kind: fc.constant("read" as const), who, slot, pick }),
  fc.record({ kind: fc.constant("read_up_to" as const), who, slot, pick }),
  fc.record({
    kind: fc.constant("moderate" as const),
    pick,
    instance: fc.integer({ min: 0, max: 1 }),
  }),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("seed" as const),
      who,
      count: fc.integer({ min: 10, max: 60 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("sanction" as const),
      what: fc.constantFrom("ban" as const, "unban" as const, "disconnect" as const),
      who,
      instance: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("membership" as const),
      what: fc.constantFrom("remove" as const, "add" as const),
      instance: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("chaos" as const),
      ops: fc.array(fc.oneof(send, amendment, amendment), { minLength: 2, maxLength: 6 }),
    }),
  },
  { weight: 6, arbitrary: send },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("burst" as const),
      sends: fc.array(send, { minLength: 2, maxLength: 5 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("moderate" as const),
      pick,
      instance: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("edit" as const), who, slot, pick, text }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), who, slot, pick }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("read" as const), who, slot, pick }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("read_up_to" as const), who, slot, pick }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("typing" as const), who, slot, on: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("close" as const), who, slot }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("open" as const),
      who,
      slot,
      instance: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("history" as const),
      who,
      slot,
      limit: fc.option(fc.constantFrom(1, 2, 3, 100), { nil: undefined }),
      before: fc.option(fc.integer({ min: 1, max: 150 }), { nil: undefined }),
      after: fc.option(fc.integer({ min: 0, max: 150 }), { nil: undefined }),
    }),
  },
);

/** The fields of a message a client shows, to compare views with the model. */
function shown(message: Frame) {
  return {
    id: message.id,
    seq: message.seq,
    sender_id: message.sender_id,
    receiver_id: message.receiver_id,
    content: message.content,
    edited: message.edited_at !== null,
    deleted: message.deleted,
    is_read: message.is_read,
  };
}

interface Held {
  socket: TestSocket;
  view: View;
  /** on /v1/ws/chats/: actions name the chat */
  all: boolean;
  /** what it last said with `typing` */
  typing?: boolean;
}

class Story {
  messages: ModelMessage[] = [];
  sockets: Record<Who, Array<Held | null>> = {
    customer: [null, null, null],
    vendor: [null, null, null],
    agent: [null, null, null],
  };
  banned = new Set<Who>();
  /** the agent is no longer the vendor's member */
  removed = false;
  /** every socket opened, for the typing check at the end */
  opened: Array<{ who: Who; socket: TestSocket }> = [];

  constructor(
    readonly cluster: TestCluster,
    readonly admins: AdminClient[],
    readonly chatId: string,
    readonly users: Record<Who, string>,
  ) {}

  modelShown(message: ModelMessage) {
    return {
      id: message.id,
      seq: message.seq,
      sender_id: this.users[message.sender],
      receiver_id: this.users[message.receiver],
      content: message.deleted ? null : message.content,
      edited: message.edited,
      deleted: message.deleted,
      is_read: message.read,
    };
  }

  unreadFor(reader: Who): ModelMessage[] {
    return this.messages.filter((message) =>
      sideOf(message.sender) !== sideOf(reader) && !message.deleted && !message.read
    );
  }

  async open(reader: Who, index: number, instance: number) {
    const all = index === 2;
    const socket = all
      ? await this.cluster.openChats(this.users[reader], instance)
      : await this.cluster.openChat(this.users[reader], this.chatId, instance);
    this.opened.push({ who: reader, socket });
    const view: View = { messages: new Map(), duplicates: [], disorder: [] };
    if (all) {
      // the chats socket starts from the chat's history, as a client would
      const chats = await socket.nextOfType("chats");
      const row = chats.chats.find((chat: Frame) => chat.chat_id === this.chatId);
      assert.ok(row, `${reader}'s chats frame lacks the chat`);
      assert.equal(row.unread_count, this.unreadFor(reader).length, "chats: unread_count");
      const last = this.messages.at(-1);
      assert.deepEqual(
        row.last_message === null ? null : shown(row.last_message),
        last ? this.modelShown(last) : null,
        "chats: last_message",
      );
      const reply = await socket.request({ action: "load_latest_chat", chat_id: this.chatId });
      assert.equal(reply.type, "ack", JSON.stringify(reply));
      const page = socket.frames.find((frame) =>
        frame.type === "latest_chat" && frame.chat_id === this.chatId
      )!;
      for (const message of page.messages) view.messages.set(message.seq, message);
      view.from = page.has_more ? page.messages[0].seq : 1;
      view.startedAt = socket.frames.indexOf(page);
    } else {
      const first = await socket.nextOfType("latest_chat");
      const unread = await socket.nextOfType("unread_messages");
      const model = this.unreadFor(reader);
      assert.equal(unread.count, model.length, `${reader}'s unread count on connecting`);
      assert.deepEqual(
        unread.messages.map(shown),
        model.slice(-50).map((message) => this.modelShown(message)),
        `${reader}'s unread messages on connecting`,
      );
      for (const message of first.messages) view.messages.set(message.seq, message);
      view.from = first.has_more ? first.messages[0].seq : 1;
      view.startedAt = socket.frames.indexOf(first);
    }
    this.sockets[reader][index] = { socket, view, all };
  }

  async close(reader: Who, index: number) {
    const held = this.sockets[reader][index];
    if (!held) return;
    this.sockets[reader][index] = null;
    held.socket.close();
    await within(held.socket.closed, 5_000, "the socket to close");
    await this.stoppedTyping(reader, held);
  }

  /** Frames counts of the open sockets as the current operation began. */
  marksAtStart = new Map<TestSocket, number>();

  /** A socket that said its user was typing and went: the others are told they stopped. */
  async stoppedTyping(typer: Who, held: Held) {
    if (!held.typing) return;
    for (const [other, index, socket] of this.open_()) {
      if (other === typer) continue;
      await this.after(
        socket,
        this.marksAtStart.get(socket) ?? 0,
        (frame) =>
          frame.type === "typing" && frame.user_id === this.users[typer] &&
          frame.is_typing === false && frame.chat_id === this.chatId,
        `${other}'s socket ${index}: typing false of ${typer}, whose socket went`,
      );
    }
  }

  /** The socket `index` of `reader`, or another open one of theirs. */
  socketOf(reader: Who, index: number): Held | null {
    return this.sockets[reader][index] ?? this.sockets[reader].find((held) => held !== null) ??
      null;
  }

  request(held: Held, frame: Frame): Promise<Frame> {
    return held.socket.request(held.all ? { ...frame, chat_id: this.chatId } : frame);
  }

  target(pick: number): ModelMessage | undefined {
    return this.messages.length === 0 ? undefined : this.messages[pick % this.messages.length];
  }

  receiverOf(step: Send): Who {
    if (step.who !== "customer") return "customer";
    return step.toAgent ? "agent" : "vendor";
  }

  /** Sends; resolves with the model's message, or null when the sender has no socket open. */
  async send(step: Send): Promise<{ step: Send; reply: Frame } | null> {
    const held = this.socketOf(step.who, step.slot);
    if (!held) return null;
    const reply = await this.request(held, {
      action: "send_message",
      receiver_id: this.users[this.receiverOf(step)],
      media_type: "text",
      content: step.text,
      ...(step.clientId === null ? {} : { client_id: step.clientId }),
    });
    if (this.removed && this.receiverOf(step) === "agent") {
      const earlier = step.clientId !== null &&
        this.messages.some((known) =>
          known.clientId === step.clientId && known.sender === step.who
        );
      // a send with its client_id under way at once is that one, acknowledged again
      const underWay = reply.type === "ack" && step.clientId !== null &&
        reply.message.client_id === step.clientId;
      if (!earlier && !underWay) {
        assert.equal(reply.code, "invalid_payload", JSON.stringify(reply));
        return null;
      }
    }
    assert.equal(reply.type, "ack", JSON.stringify(reply));
    return { step, reply };
  }

  /** Takes acknowledged sends into the model, in seq order. */
  accept(sent: Array<{ step: Send; reply: Frame } | null>, exact = true) {
    const fresh = new Map<number, ModelMessage>();
    for (const item of sent) {
      if (!item) continue;
      const { step, reply } = item;
      const message = reply.message;
      const earlier = step.clientId === null
        ? undefined
        : this.messages.find((known) =>
          known.clientId === step.clientId && known.sender === step.who
        );
      if (earlier) {
        assert.equal(message.id, earlier.id, "a retried client_id acks the first message");
        // (in a chaos, what else it holds may change the message meanwhile)
        if (exact) {
          assert.deepEqual(
            shown(message),
            this.modelShown(earlier),
            "the retry's ack: as it is now",
          );
        } else assert.equal(message.seq, earlier.seq);
        continue;
      }
      const twin = fresh.get(message.seq);
      if (twin) {
        assert.equal(twin.id, message.id, `two messages with seq ${message.seq}`);
        assert.ok(
          step.clientId !== null && twin.clientId === step.clientId && twin.sender === step.who,
          "only a retried client_id acks a message twice",
        );
        continue;
      }
      assert.equal(message.sender_id, this.users[step.who]);
      // of sends with one client_id at once, any may be the one stored
      if (step.clientId === null) assert.equal(message.content, step.text.trim());
      fresh.set(message.seq, {
        id: message.id,
        seq: message.seq,
        sender: step.who,
        // (of sends with one client_id at once, the one stored may name another)
        receiver: everyone.find((user) => this.users[user] === message.receiver_id)!,
        content: message.content,
        edited: false,
        deleted: false,
        read: false,
        clientId: step.clientId,
      });
    }
    for (const seq of [...fresh.keys()].sort((a, b) => a - b)) {
      assert.equal(seq, this.messages.length + 1, "seq rises by one without gaps");
      this.messages.push(fresh.get(seq)!);
    }
  }

  /** The open sockets, with their user and slot. */
  open_(): Array<[Who, number, TestSocket]> {
    const open: Array<[Who, number, TestSocket]> = [];
    for (const reader of everyone) {
      this.sockets[reader].forEach((held, index) => {
        if (held) open.push([reader, index, held.socket]);
      });
    }
    return open;
  }

  marks(): Map<TestSocket, number> {
    return new Map(this.open_().map(([, , socket]) => [socket, socket.frames.length]));
  }

  /** The first frame after `mark` matching, waiting up to 5 s for it. */
  async after(
    socket: TestSocket,
    mark: number,
    predicate: (frame: Frame) => boolean,
    what: string,
  ): Promise<Frame> {
    const deadline = Date.now() + 5_000;
    while (true) {
      const found = socket.frames.slice(mark).find(predicate);
      if (found) return found;
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * After a send on its own, every socket of the receiver's side is pushed unread_messages with
   * the count the model has, after the chat_message.
   */
  async checkUnreadPushes(step: Send, marks: Map<TestSocket, number>) {
    const message = this.messages.at(-1);
    if (!message || !this.socketOf(step.who, step.slot)) return;
    for (const [reader, index, socket] of this.open_()) {
      const mark = marks.get(socket) ?? 0;
      const where = `${reader}'s socket ${index}`;
      const received = await this.after(
        socket,
        mark,
        (frame) => frame.type === "chat_message" && frame.message.seq === message.seq,
        `${where}: chat_message ${message.seq}`,
      );
      if (sideOf(reader) === sideOf(step.who)) continue;
      const from = socket.frames.indexOf(received);
      const push = await this.after(
        socket,
        from,
        (frame) => frame.type === "unread_messages" && frame.chat_id === this.chatId,
        `${where}: unread_messages after seq ${message.seq}`,
      );
      const model = this.unreadFor(reader);
      assert.equal(push.count, model.length, `${where}: pushed unread count`);
      assert.deepEqual(
        push.messages.map(shown),
        model.slice(-50).map((unread) => this.modelShown(unread)),
        `${where}: pushed unread messages`,
      );
    }
  }

  /** Runs operations at once: sends go to the model as acknowledged, the rest from the store. */
  async chaos(ops: Op[]) {
    const sent: Array<{ step: Send; reply: Frame } | null> = [];
    await Promise.all(ops.map(async (step) => {
      if (step.kind === "send") return sent.push(await this.send(step));
      if (step.kind === "moderate") {
        const message = this.target(step.pick);
        if (!message) return;
        await this.admins[step.instance]!.call("DeleteMessage", {
          message_id: message.id,
          moderator_id: "mod-1",
          reason: "model",
        });
        return;
      }
      if (
        step.kind !== "edit" && step.kind !== "delete" && step.kind !== "read" &&
        step.kind !== "read_up_to"
      ) return;
      const held = this.socketOf(step.who, step.slot);
      if (!held) return;
      const message = this.target(step.pick);
      let frame: Frame;
      if (step.kind === "read_up_to") {
        frame = { action: "read_up_to", seq: step.pick % (this.messages.length + 4) };
      } else if (!message) return;
      else if (step.kind === "edit") {
        frame = { action: "edit_message", message_id: message.id, content: step.text };
      } else if (step.kind === "delete") {
        frame = { action: "delete_message", message_id: message.id };
      } else frame = { action: "read_message", message_id: message.id };
      const reply = await this.request(held, frame);
      assert.ok(
        reply.type === "ack" || ["not_found", "forbidden"].includes(reply.code),
        JSON.stringify(reply),
      );
    }));
    this.accept(sent, false);
    const pages = await this.admins[0]!.pages(
      "ListMessages",
      { chat_id: this.chatId, include_deleted: true, page_size: 500 },
      "messages",
    );
    const stored = pages.flat();
    assert.equal(stored.length, this.messages.length, "the store holds the messages acknowledged");
    for (const row of stored) {
      const message = this.messages[Number(row.seq) - 1]!;
      assert.equal(row.id, message.id);
      message.content = row.content;
      message.deleted = row.deleted;
      message.read = row.is_read;
      message.edited = row.edited_at !== null && row.edited_at !== undefined;
    }
  }

  async run(step: Op) {
    this.marksAtStart = this.marks();
    if (step.kind === "chaos") return await this.chaos(step.ops);
    if (step.kind === "seed") {
      if (this.banned.has(step.who) || (step.who === "agent" && this.removed)) return;
      const to = step.who === "customer" ? "vendor" : "customer";
      await seedMessages(this.cluster, this.chatId, {
        from: this.users[step.who],
        to: this.users[to],
        count: step.count,
        text: (n) => `seed ${n}`,
      });
      const pages = await this.admins[0]!.pages(
        "ListMessages",
        { chat_id: this.chatId, include_deleted: true, page_size: 500 },
        "messages",
      );
      const stored = pages.flat().sort((a, b) => Number(a.seq) - Number(b.seq));
      assert.equal(stored.length, this.messages.length + step.count);
      for (const row of stored.slice(this.messages.length)) {
        assert.equal(Number(row.seq), this.messages.length + 1);
        this.messages.push({
          id: row.id,
          seq: Number(row.seq),
          sender: step.who,
          receiver: to,
          content: row.content,
          edited: false,
          deleted: false,
          read: false,
          clientId: null,
        });
      }
      return;
    }
    if (step.kind === "open") {
      if (this.sockets[step.who][step.slot]) return;
      if (this.banned.has(step.who) || (step.who === "agent" && this.removed && step.slot < 2)) {
        const socket = step.slot === 2
          ? await this.cluster.openChats(this.users[step.who], step.instance)
          : await this.cluster.openChat(this.users[step.who], this.chatId, step.instance);
        const closed = await within(socket.closed, 5_000, "a refused socket to close");
        assert.equal(closed.code, 4403, `${step.who} banned or removed is refused`);
        return;
      }
      if (step.who === "agent" && this.removed) return;
      await this.open(step.who, step.slot, step.instance);
      return;
    }
    if (step.kind === "sanction") {
      const admin = this.admins[step.instance]!;
      const user_id = this.users[step.who];
      const by = { moderator_id: "mod-1", reason: "model" };
      if (step.what === "unban") {
        if (!this.banned.has(step.who)) return;
        await admin.call("UnbanUser", { user_id, ...by });
        this.banned.delete(step.who);
        return;
      }
      if (step.what === "ban") {
        if (this.banned.has(step.who)) return;
        await admin.call("BanUser", { user_id, duration_seconds: 0, ...by });
        this.banned.add(step.who);
      } else await admin.call("DisconnectUser", { user_id, ...by });
      const code = step.what === "ban" ? 4403 : 4408;
      for (const index of [0, 1, 2]) {
        const held: Held | null = this.sockets[step.who][index] ?? null;
        if (!held) continue;
        const closed: CloseInfo = await within(
          held.socket.closed,
          5_000,
          `${step.what}: the socket to close`,
        );
        assert.equal(closed.code, code, `${step.what}: ${step.who}'s socket ${index} closed`);
        this.sockets[step.who][index] = null;
        await this.stoppedTyping(step.who, held);
      }
      return;
    }
    if (step.kind === "membership") {
      const admin = this.admins[step.instance]!;
      const member = { vendor_id: this.users.vendor, user_id: this.users.agent };
      if (step.what === "add") {
        if (!this.removed) return;
        await admin.call("AddVendorMember", { ...member, role: "VENDOR_ROLE_AGENT" });
        this.removed = false;
        return;
      }
      if (this.removed) return;
      await admin.call("RemoveVendorMember", member);
      this.removed = true;
      for (const index of [0, 1]) {
        const held = this.sockets.agent[index];
        if (!held) continue;
        const closed = await within(held.socket.closed, 5_000, "removal: the socket to close");
        assert.equal(closed.code, 4403, `removal: agent's socket ${index} closed`);
        this.sockets.agent[index] = null;
        await this.stoppedTyping("agent", held);
      }
      const all = this.sockets.agent[2];
      if (all) {
        const reply = await this.request(all, { action: "unread_message" });
        assert.equal(
          reply.code,
          "forbidden",
          `removed agent's chats socket: ${JSON.stringify(reply)}`,
        );
        await this.close("agent", 2);
      }
      return;
    }
    if (step.kind === "close") return await this.close(step.who, step.slot);
    if (step.kind === "send") {
      const marks = this.marks();
      const before = this.messages.length;
      this.accept([await this.send(step)]);
      if (this.messages.length > before) await this.checkUnreadPushes(step, marks);
      return;
    }
    if (step.kind === "burst") {
      return this.accept(await Promise.all(step.sends.map((send) => this.send(send))));
    }
    if (step.kind === "moderate") {
      const message = this.target(step.pick);
      if (!message) return;
      const reply = await this.admins[step.instance]!.call("DeleteMessage", {
        message_id: message.id,
        moderator_id: "mod-1",
        reason: "model",
      });
      assert.equal(reply.deleted, true);
      message.deleted = true;
      return;
    }
    const held = this.socketOf(step.who, step.slot);
    if (!held) return;
    switch (step.kind) {
      case "edit": {
        const message = this.target(step.pick);
        if (!message) return;
        const reply = await this.request(held, {
          action: "edit_message",
          message_id: message.id,
          content: step.text,
        });
        if (message.deleted) {
          assert.equal(reply.code, "not_found", JSON.stringify(reply));
        } else if (message.sender !== step.who) {
          assert.equal(reply.code, "forbidden", JSON.stringify(reply));
        } else {
          assert.equal(reply.type, "ack", JSON.stringify(reply));
          if (message.content !== step.text.trim()) message.edited = true;
          message.content = step.text.trim();
          assert.equal(reply.message.content, step.text.trim());
        }
        return;
      }
      case "delete": {
        const message = this.target(step.pick);
        if (!message) return;
        const reply = await this.request(held, {
          action: "delete_message",
          message_id: message.id,
        });
        if (message.sender !== step.who) {
          assert.equal(
            reply.code,
            message.deleted ? "not_found" : "forbidden",
            JSON.stringify(reply),
          );
        } else {
          assert.equal(reply.type, "ack", JSON.stringify(reply));
          message.deleted = true;
        }
        return;
      }
      case "read": {
        const message = this.target(step.pick);
        if (!message) return;
        const reply = await this.request(held, { action: "read_message", message_id: message.id });
        if (message.deleted) {
          assert.equal(reply.type, "error", JSON.stringify(reply));
        } else if (sideOf(message.sender) === sideOf(step.who)) {
          assert.equal(reply.code, "forbidden", JSON.stringify(reply));
        } else {
          assert.equal(reply.type, "ack", JSON.stringify(reply));
          message.read = true;
        }
        return;
      }
      case "read_up_to": {
        const seq = step.pick === 60
          ? Number.MAX_SAFE_INTEGER
          : step.pick % (this.messages.length + 2);
        const reply = await this.request(held, { action: "read_up_to", seq });
        assert.equal(reply.type, "ack", JSON.stringify(reply));
        for (const message of this.messages) {
          if (
            message.seq <= seq && sideOf(message.sender) !== sideOf(step.who) && !message.deleted
          ) {
            message.read = true;
          }
        }
        return;
      }
      case "typing": {
        const marks = this.marks();
        const reply = await this.request(held, { action: "typing", is_typing: step.on });
        assert.equal(reply.type, "ack", JSON.stringify(reply));
        held.typing = step.on;
        for (const [other, index, socket] of this.open_()) {
          if (other === step.who) continue;
          const mark = marks.get(socket) ?? 0;
          await this.after(
            socket,
            mark,
            (frame) =>
              frame.type === "typing" && frame.user_id === this.users[step.who] &&
              frame.is_typing === step.on && frame.chat_id === this.chatId,
            `${other}'s socket ${index}: typing ${step.on} of ${step.who}`,
          );
        }
        return;
      }
      case "history": {
        const fields: Frame = {};
        if (step.limit !== undefined) fields.limit = step.limit;
        if (step.before !== undefined) fields.before_seq = step.before;
        if (step.after !== undefined) fields.after_seq = step.after;
        const mark = held.socket.frames.length;
        const reply = await this.request(held, { action: "load_latest_chat", ...fields });
        assert.equal(reply.type, "ack", JSON.stringify(reply));
        const page = held.socket.frames.slice(mark).find((frame) => frame.type === "latest_chat");
        assert.ok(page, "load_latest_chat acked without latest_chat");
        const limit = step.limit ?? 50;
        const between = this.messages.filter((message) =>
          (step.before === undefined || message.seq < step.before) &&
          (step.after === undefined || message.seq > step.after)
        );
        const expected = step.after !== undefined
          ? between.slice(0, limit)
          : between.slice(Math.max(0, between.length - limit));
        assert.deepEqual(
          page.messages.map(shown),
          expected.map((message) => this.modelShown(message)),
          `history page ${JSON.stringify(fields)}`,
        );
        assert.equal(
          page.has_more,
          between.length > limit,
          `has_more of ${JSON.stringify(fields)}`,
        );
        return;
      }
    }
  }

  /** Folds a socket's frames (after its first page) into its view. */
  fold(view: View, frames: Frame[]) {
    let highest = Math.max(0, ...view.messages.keys());
    const firstPage = new Set(view.messages.keys());
    const heard = new Set<number>();
    for (const frame of frames) {
      if (frame.chat_id !== this.chatId) continue;
      switch (frame.type) {
        case "chat_message": {
          const seq = frame.message.seq;
          if (heard.has(seq) || firstPage.has(seq)) view.duplicates.push(seq);
          heard.add(seq);
          if (seq < highest) view.disorder.push(seq);
          highest = Math.max(highest, seq);
          view.messages.set(seq, frame.message);
          break;
        }
        case "message_edited": {
          const message = frame.message;
          if (view.messages.has(message.seq)) view.messages.set(message.seq, message);
          break;
        }
        case "message_deleted": {
          const message = view.messages.get(frame.seq);
          if (message) {
            view.messages.set(frame.seq, {
              ...message,
              deleted: true,
              content: null,
              media_url: null,
            });
          }
          break;
        }
        case "message_read": {
          const message = view.messages.get(frame.seq);
          if (message) view.messages.set(frame.seq, { ...message, is_read: true });
          break;
        }
        case "messages_read": {
          const readerSide = frame.reader_id === this.users.customer ? "customer" : "vendor";
          for (const [seq, message] of view.messages) {
            const senderSide = message.sender_id === this.users.customer ? "customer" : "vendor";
            if (seq <= frame.up_to_seq && senderSide !== readerSide && !message.deleted) {
              view.messages.set(seq, { ...message, is_read: true });
            }
          }
          break;
        }
      }
    }
  }

  /** Every socket's view, once its frames settle, and a fresh connection's history. */
  async check() {
    const everything = this.messages.map((message) => this.modelShown(message));
    for (const reader of everyone) {
      for (const held of this.sockets[reader]) {
        if (!held) continue;
        const expected = everything.slice(held.view.from! - 1);
        const deadline = Date.now() + 5_000;
        let actual: unknown[] = [];
        let view: View;
        let mark: number;
        while (true) {
          // a barrier: everything that socket's instance sent before it has arrived
          mark = held.socket.frames.length;
          const reply = await this.request(held, { action: "unread_message" });
          assert.equal(reply.type, "ack");
          view = {
            messages: new Map(held.view.messages),
            duplicates: [],
            disorder: [],
            from: held.view.from!,
          };
          this.fold(view, held.socket.frames.slice(held.view.startedAt! + 1));
          actual = [...view.messages.values()].sort((a, b) => a.seq - b.seq).map(shown);
          if (JSON.stringify(actual) === JSON.stringify(expected) || Date.now() > deadline) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const where = `${reader}'s ${held.all ? "chats" : "chat"} socket`;
        assert.deepEqual(actual, expected, `${where}: its view`);
        assert.deepEqual(view.duplicates, [], `${where} heard messages twice`);
        assert.deepEqual(view.disorder, [], `${where} heard messages out of order`);
        const unread = held.socket.frames.slice(mark).findLast((frame) =>
          frame.type === "unread_messages"
        )!;
        const model = this.unreadFor(reader);
        assert.equal(unread.count, model.length, `${where}: unread count`);
        assert.deepEqual(
          unread.messages.map(shown),
          model.slice(-50).map((message) => this.modelShown(message)),
          `${where}: unread messages`,
        );
        if (held.all) {
          const before = held.socket.frames.length;
          await this.request(held, { action: "list_chats" });
          const list = held.socket.frames.slice(before).find((frame) => frame.type === "chats")!;
          const row = list.chats.find((chat: Frame) => chat.chat_id === this.chatId);
          assert.ok(row, `${where}: list_chats lacks the chat`);
          assert.equal(row.unread_count, model.length, `${where}: list_chats unread_count`);
          assert.deepEqual(
            row.last_message === null ? null : shown(row.last_message),
            everything.at(-1) ?? null,
            `${where}: list_chats last_message`,
          );
        }
      }
    }
    for (const reader of everyone) {
      if (this.banned.has(reader) || (reader === "agent" && this.removed)) continue;
      await using fresh = await this.cluster.openChat(this.users[reader], this.chatId, 1);
      const page = await fresh.nextOfType("latest_chat");
      assert.deepEqual(
        page.messages.map(shown),
        everything.slice(-50),
        `${reader}'s fresh history`,
      );
      assert.equal(page.has_more, everything.length > 50);
      const unread = await fresh.nextOfType("unread_messages");
      assert.equal(unread.count, this.unreadFor(reader).length, `${reader}'s fresh unread count`);
    }
    const chat = await this.admins[0]!.call("GetChat", { chat_id: this.chatId });
    assert.equal(Number(chat.message_count), this.messages.length, "GetChat message_count");
    for (const { who: typer, socket } of this.opened) {
      const own = socket.frames.filter((frame) =>
        frame.type === "typing" && frame.user_id === this.users[typer]
      );
      assert.deepEqual(own, [], `${typer} was told of their own typing`);
    }
  }

  async [Symbol.asyncDispose]() {
    for (const reader of everyone) {
      for (const index of [0, 1, 2]) await this.close(reader, index);
    }
  }
}

Deno.test("a chat's whole story: every socket's view, history and unread counts match a model", async () => {
  await using cluster = await startCluster({
    instances: 2,
    grpc: true,
    env: { WS_RATE_PER_SECOND: "100000", WS_RATE_BURST: "100000" },
  });
  const admins = [await cluster.admin(0), await cluster.admin(1)];
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
      run++;
      const users = { customer: `cust-${run}`, vendor: `shop-${run}`, agent: `agent-${run}` };
      const chat = await admins[0]!.call("CreateChat", {
        user_id: users.customer,
        vendor_id: users.vendor,
      });
      await admins[1]!.call("AddVendorMember", {
        vendor_id: users.vendor,
        user_id: users.agent,
        role: "VENDOR_ROLE_AGENT",
      });
      await using story = new Story(cluster, admins, chat.id, users);
      await story.open("customer", 0, 0);
      await story.open("vendor", 0, 1);
      await story.open("agent", 2, 0);
      for (const step of ops) await story.run(step);
      await story.check();
    }),
    { numRuns: RUNS },
  );
});
