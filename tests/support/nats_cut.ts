import type { Reply } from "./admin_client.ts";
import { startNatsServer } from "./nats_server.ts";
import { startCluster, type TestCluster } from "./service.ts";
import { holdAnswers } from "./steps.ts";
import { startTcpProxy, type TcpProxy } from "./tcp_proxy.ts";
import type { Frame, TestSocket } from "./ws_client.ts";

/**
 * Two instances on a NATS server of their own: the first reaches it directly, the second
 * through a proxy the test can cut.
 */
export async function natsCutToSecondInstance(
  env: Record<string, string> = {},
  options: { grpc?: boolean } = {},
) {
  const nats = await startNatsServer();
  const proxy = startTcpProxy(nats.url);
  const cluster = await startCluster({ instances: 0, env, ...options });
  const setup = {
    cluster,
    proxy,
    /** The server's own URL, for instances that reach it directly. */
    natsUrl: nats.url,
    async [Symbol.asyncDispose]() {
      await cluster[Symbol.asyncDispose]();
      await proxy[Symbol.asyncDispose]();
      await nats[Symbol.asyncDispose]();
    },
  };
  try {
    await cluster.startInstance({ NATS_URL: nats.url });
    await cluster.startInstance({ NATS_URL: proxy.url });
  } catch (error) {
    await setup[Symbol.asyncDispose]();
    throw error;
  }
  return setup;
}

/**
 * Opens `userId`'s socket on `/v1/ws/chat/{chatId}/` of the second instance, or on `/v1/ws/chats/`
 * without `chatId` (closed with the cluster), and runs `meanwhile` once its access was read and
 * before its first page (or chat list) is, with what NATS sends that instance held back: the
 * events published meanwhile reach it late. NATS lets them through once the first frames were
 * read (the page and the unread counts; the list), before they go on.
 */
export async function connectWhileEventsLate(
  setup: { cluster: TestCluster; proxy: TcpProxy },
  connect: { userId: string; chatId?: string; meanwhile: () => Promise<void> },
): Promise<TestSocket> {
  const { cluster, proxy } = setup;
  const { userId, chatId } = connect;
  const service = cluster.instances[1]!.service.chat;
  const access = holdAnswers(service, chatId === undefined ? "joinAllChats" : "joinChat");
  // the last read of the first frames
  const last = holdAnswers(service, chatId === undefined ? "listChats" : "unread");
  const socket = chatId === undefined
    ? await cluster.openChats(userId, 1)
    : await cluster.openChat(userId, chatId, 1);
  await access.read;
  proxy.stall("downstream");
  await connect.meanwhile();
  access.release();
  await last.read;
  proxy.restore();
  last.release();
  return socket;
}

/**
 * Creates the chat of `user_id` and `vendor_id` through the second instance's admin plane, whose
 * sockets are told of it at once, not over NATS, and runs `meanwhile` once a socket there taking
 * it in has read its side in it and before it reads its history, with what NATS sends that
 * instance held back: the events published meanwhile reach it late. NATS lets them through once
 * the history was read, before it goes on. Returns the chat.
 */
export async function newChatWhileEventsLate(
  setup: { cluster: TestCluster; proxy: TcpProxy },
  newChat: { user_id: string; vendor_id: string; meanwhile: (chat: Reply) => Promise<void> },
): Promise<Reply> {
  const { cluster, proxy } = setup;
  const { meanwhile, ...pair } = newChat;
  const service = cluster.instances[1]!.service.chat;
  const takeIn = holdAnswers(service, "memberships");
  const history = holdAnswers(service, "history");
  const chat = await (await cluster.admin(1)).call("CreateChat", pair);
  await takeIn.read;
  proxy.stall("downstream");
  await meanwhile(chat);
  takeIn.release();
  await history.read;
  proxy.restore();
  history.release();
  return chat;
}

/**
 * The contents of every `chat_message`, and the counts of every `unread_messages`, the socket
 * was sent and not taken.
 */
export function messagesAndCounts(socket: TestSocket): { messages: string[]; counts: number[] } {
  return {
    messages: socket.pending("chat_message").map((frame) => frame.message.content),
    counts: socket.pending("unread_messages").map((frame) => frame.count),
  };
}

/** The contents of the messages of every `latest_chat` the socket was sent and not taken. */
export function pagedContents(socket: TestSocket): string[] {
  return socket.pending("latest_chat").flatMap((page: Frame) =>
    page.messages.map((message: { content: string }) => message.content)
  );
}

/** The contents of the last messages of every `chats` the socket was sent and not taken. */
export function listedContents(socket: TestSocket): string[] {
  return socket.pending("chats").flatMap((list: Frame) =>
    list.chats.flatMap((chat: Frame) => chat.last_message ? [chat.last_message.content] : [])
  );
}
