import { type ChatClient, createChatClient } from "../client/mod.ts";
import { type BenchChat, tokenFor } from "./setup.ts";
import { summarize, type Summary } from "./stats.ts";

/** Handshake to `latest_chat`, `samples` times one after another, for one chat. */
export async function measureConnect(
  wsBase: string,
  secret: string,
  chat: BenchChat,
  samples: number,
): Promise<Summary> {
  const token = await tokenFor(secret, chat.customer);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    const client = createChatClient({ url: wsBase, token, chatId: chat.id });
    // ready: the first frame, `latest_chat`, is in
    await client.ready();
    times.push(performance.now() - start);
    await client.close();
  }
  return summarize(times);
}

/** Opens `count` clients that then sit idle; returns them for the caller to close. */
export async function openIdleSockets(
  wsBase: string,
  secret: string,
  chats: BenchChat[],
  count: number,
  onProgress?: (line: string) => void,
): Promise<ChatClient[]> {
  const clients: ChatClient[] = [];
  const tokens = new Map<string, string>();
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, async (_, j) => {
        const chat = chats[(i + j) % chats.length]!;
        const user = (i + j) % 2 === 0 ? chat.customer : chat.vendor;
        const token = tokens.get(user) ?? await tokenFor(secret, user);
        tokens.set(user, token);
        const client = createChatClient({ url: wsBase, token, chatId: chat.id });
        await client.ready();
        return client;
      }),
    );
    clients.push(...batch);
    if ((i / 100) % 10 === 0) onProgress?.(`  ${clients.length} idle sockets open`);
  }
  return clients;
}
