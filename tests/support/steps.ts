import assert from "node:assert/strict";
import type { TestCluster } from "./service.ts";
import type { Frame, TestSocket } from "./ws_client.ts";

/** Steps the scenario tests share: joining past the first frames, sending, barriers. */

/** Opens `/v1/ws/chat/{chatId}/` and takes its first frames (`latest_chat`, `unread_messages`). */
export async function joinChat(
  cluster: TestCluster,
  userId: string,
  chatId: string,
  instance?: number,
): Promise<TestSocket> {
  const socket = await cluster.openChat(userId, chatId, instance);
  await socket.nextOfType("latest_chat");
  await socket.nextOfType("unread_messages");
  return socket;
}

/** Opens `/v1/ws/chats/` and takes its first frame (`chats`). */
export async function joinAllChats(
  cluster: TestCluster,
  userId: string,
  instance?: number,
): Promise<TestSocket> {
  const socket = await cluster.openChats(userId, instance);
  await socket.nextOfType("chats");
  return socket;
}

/**
 * Stores `count` text messages ("m1".."m<count>" unless `text` says otherwise) from `from` to
 * `to` through the domain service: history for a test to read, without the per-socket rate
 * limit. Open sockets see them as usual.
 */
export async function seedMessages(
  cluster: TestCluster,
  chatId: string,
  options: {
    from: string;
    to: string;
    count: number;
    text?: (n: number) => string;
  },
): Promise<void> {
  const service = cluster.main.service.chat;
  const { membership } = await service.joinChat(options.from, chatId);
  const actor = { user_id: options.from, membership };
  for (let n = 1; n <= options.count; n++) {
    await service.sendMessage(actor, {
      receiver_id: options.to,
      media_type: "text",
      content: options.text?.(n) ?? `m${n}`,
      media: null,
      client_id: null,
    });
  }
}

/** Sends a text message and returns the acknowledged message; fails on an error frame. */
export async function sendText(
  socket: TestSocket,
  receiverId: string,
  content: string,
  extra: Frame = {},
): Promise<Frame> {
  const reply = await socket.request({
    action: "send_message",
    receiver_id: receiverId,
    media_type: "text",
    content,
    ...extra,
  });
  assert.equal(reply.type, "ack", `send_message was refused: ${JSON.stringify(reply)}`);
  return reply.message;
}

/** Sends an action that must succeed; resolves with its `ack`. */
export async function acked(socket: TestSocket, frame: Frame): Promise<Frame> {
  const reply = await socket.request(frame);
  assert.equal(reply.type, "ack", `${frame.action} was refused: ${JSON.stringify(reply)}`);
  return reply;
}

/** Sends an action that must fail with `code`; resolves with the error frame. */
export async function refused(socket: TestSocket, frame: Frame, code: string): Promise<Frame> {
  const reply = await socket.request(frame);
  assert.equal(reply.type, "error", `${frame.action} was not refused: ${JSON.stringify(reply)}`);
  assert.equal(reply.code, code, `unexpected error: ${JSON.stringify(reply)}`);
  return reply;
}

/** The next `chat_message` carrying message `seq`. */
export function messageWithSeq(socket: TestSocket, seq: number): Promise<Frame> {
  return socket.next(
    (frame) => frame.type === "chat_message" && frame.message.seq === seq,
    `chat_message seq ${seq}`,
  );
}

/**
 * Frames received after `mark` (a `frames.length` read earlier) and before `barrier`: a frame
 * the server sent before the barrier but should not have sent at all shows up here.
 */
export function framesBetween(socket: TestSocket, mark: number, barrier: Frame): Frame[] {
  const end = socket.frames.indexOf(barrier);
  assert.ok(end >= mark, "the barrier frame arrived before the mark");
  return socket.frames.slice(mark, end);
}

/**
 * `unread_message` (with `chat_id` on `/v1/ws/chats/`): resolves with the `unread_messages`
 * that answered it, the one sent just before its ack (pushed ones are left in place).
 */
export async function askUnread(socket: TestSocket, chatId?: string): Promise<Frame> {
  const mark = socket.frames.length;
  const ack = await acked(socket, {
    action: "unread_message",
    ...(chatId === undefined ? {} : { chat_id: chatId }),
  });
  const answer = framesBetween(socket, mark, ack).findLast((frame) =>
    frame.type === "unread_messages"
  );
  assert.ok(answer, "unread_message was acked without unread_messages");
  if (chatId !== undefined) assert.equal(answer.chat_id, chatId);
  return await socket.next((frame) => frame === answer, "the answer to unread_message");
}

/** Proves the socket still answers: `unread_message` yields its `unread_messages` and `ack`. */
export async function stillServes(socket: TestSocket, chatId?: string): Promise<void> {
  await askUnread(socket, chatId);
}

/** A chat id no chat has. */
export function unknownId(): string {
  return crypto.randomUUID();
}

/**
 * Holds each answer of `service[method]`, once read, until `release()`: what a test does in
 * between (a send, a removal) happens after the read and before the answer is sent on. `read`
 * resolves as the first answer is held. With `beforeReading`, each call is held before it reads
 * instead (what the test does comes after the call and before the read), and `read` resolves as
 * the first call is held.
 */
export function holdAnswers<
  K extends string,
  S extends Record<K, (...args: never[]) => Promise<unknown>>,
>(
  service: S,
  method: K,
  options: { beforeReading?: boolean } = {},
): { read: Promise<void>; release: () => void } {
  const original = service[method];
  const read = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  const held = async () => {
    read.resolve();
    await released.promise;
  };
  Object.assign(service, {
    [method]: async (...args: never[]) => {
      if (options.beforeReading) await held();
      const answer = await original.apply(service, args);
      if (!options.beforeReading) await held();
      return answer;
    },
  });
  return { read: read.promise, release: () => released.resolve() };
}

/**
 * A chat of cust-1 with vend-1, whose agent agent-1 is: the customer's socket on it and the
 * agent's chats socket (both closed with the cluster).
 */
export async function agentWatching(cluster: TestCluster) {
  const service = cluster.main.service.chat;
  const chat = await service.createChat("cust-1", "vend-1");
  await service.addVendorMember("vend-1", "agent-1", "agent");
  return {
    chat,
    customer: await joinChat(cluster, "cust-1", chat.id),
    agentAll: await joinAllChats(cluster, "agent-1"),
  };
}
