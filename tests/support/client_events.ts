import {
  type ChatClient,
  type ChatClientEvent,
  type ChatClientEvents,
  type ChatClientOptions,
  createChatClient,
} from "../../client/mod.ts";
import type { TestCluster } from "./service.ts";
import { startTcpProxy } from "./tcp_proxy.ts";
import { within } from "./wait.ts";

const EVENTS: readonly ChatClientEvent[] = [
  "latest_chat",
  "chats",
  "unread_messages",
  "chat_message",
  "message_read",
  "messages_read",
  "message_deleted",
  "message_edited",
  "typing",
  "error",
  "invalid_frame",
  "gap",
  "status",
];

/**
 * Every event of a client, kept so that a test can wait for the one it expects (with a
 * deadline) without racing the client, as TestSocket does for frames.
 */
export class ClientEvents implements Disposable {
  readonly #seen: Array<{ event: ChatClientEvent; value: unknown }> = [];
  readonly #taken = new Set<number>();
  readonly #waiters = new Set<() => void>();
  readonly #stop: Array<() => void>;

  constructor(client: ChatClient) {
    this.#stop = EVENTS.map((event) =>
      client.on(event, (value) => {
        this.#seen.push({ event, value });
        for (const waiter of [...this.#waiters]) waiter();
      })
    );
  }

  /** Every event of a kind so far, taken or not. */
  all<E extends ChatClientEvent>(event: E): Array<ChatClientEvents[E]> {
    return this.#seen.filter((seen) => seen.event === event).map((seen) =>
      seen.value as ChatClientEvents[E]
    );
  }

  /** The first not-yet-taken event of a kind matching `predicate`, waiting up to `ms`. */
  next<E extends ChatClientEvent>(
    event: E,
    predicate: (value: ChatClientEvents[E]) => boolean = () => true,
    ms = 5_000,
  ): Promise<ChatClientEvents[E]> {
    const find = () => {
      for (let index = 0; index < this.#seen.length; index++) {
        const seen = this.#seen[index]!;
        if (this.#taken.has(index) || seen.event !== event) continue;
        const value = seen.value as ChatClientEvents[E];
        if (!predicate(value)) continue;
        this.#taken.add(index);
        return { value };
      }
      return undefined;
    };
    const found = find();
    if (found) return Promise.resolve(found.value);
    let waiter = () => {};
    const match = new Promise<ChatClientEvents[E]>((resolve) => {
      waiter = () => {
        const hit = find();
        if (hit) resolve(hit.value);
      };
      this.#waiters.add(waiter);
    });
    return within(match, ms, `a ${event} event`).finally(() => this.#waiters.delete(waiter));
  }

  /** Waits until `count` chat_message events arrived for a chat; returns their seqs, in order. */
  async seqs(chatId: string, count: number, ms = 10_000): Promise<number[]> {
    const of = () =>
      this.all("chat_message").filter((frame) => frame.chat_id === chatId).map((frame) =>
        frame.message.seq
      );
    if (of().length < count) {
      let waiter = () => {};
      const enough = new Promise<void>((resolve) => {
        waiter = () => {
          if (of().length >= count) resolve();
        };
        this.#waiters.add(waiter);
        waiter();
      });
      await within(enough, ms, `${count} messages in chat ${chatId}`).finally(() =>
        this.#waiters.delete(waiter)
      );
    }
    return of();
  }

  [Symbol.dispose](): void {
    for (const stop of this.#stop) stop();
  }
}

/**
 * A client of the library under test, connected to an instance of the cluster (default: the
 * first), with its events recorded. Close it with `await using`.
 */
export async function openClient(
  cluster: TestCluster,
  userId: string,
  options: Partial<ChatClientOptions> & { instance?: number } = {},
): Promise<{ client: ChatClient; events: ClientEvents } & AsyncDisposable> {
  const { instance, ...rest } = options;
  const token = await cluster.token(userId);
  const client = createChatClient({
    url: cluster.instances[instance ?? 0]!.httpUrl,
    token,
    backoff: { initialMs: 20, maxMs: 200 },
    ...rest,
  });
  const events = new ClientEvents(client);
  return {
    client,
    events,
    async [Symbol.asyncDispose]() {
      await client.close();
      events[Symbol.dispose]();
    },
  };
}

/** A client (see openClient) whose connection goes through a proxy the test can cut or stall. */
export async function openThroughProxy(
  cluster: TestCluster,
  userId: string,
  options: Partial<ChatClientOptions> = {},
) {
  const proxy = startTcpProxy({ hostname: "127.0.0.1", port: cluster.main.service.port });
  const opened = await openClient(cluster, userId, {
    ...options,
    url: `http://127.0.0.1:${proxy.port}`,
  });
  return {
    ...opened,
    proxy,
    async [Symbol.asyncDispose]() {
      await opened[Symbol.asyncDispose]();
      await proxy[Symbol.asyncDispose]();
    },
  };
}

/** Sends a text message to `receiver`; resolves with the stored message. */
export function sendText(client: ChatClient, receiver: string, content: string) {
  return client.request({
    action: "send_message",
    receiver_id: receiver,
    media_type: "text",
    content,
  });
}

/** Sends text messages to `receiver`, one after the other. */
export async function sendEach(client: ChatClient, receiver: string, contents: string[]) {
  for (const content of contents) await sendText(client, receiver, content);
}
