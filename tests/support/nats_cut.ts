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
