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
    const socket = new WebSocket(`${wsBase}/v1/ws/chat/${chat.id}/?token=${token}`);
    await new Promise<void>((resolve, reject) => {
      socket.onmessage = (event) => {
        if (String(event.data).startsWith(`{"type":"latest_chat"`)) {
          times.push(performance.now() - start);
          resolve();
        }
      };
      socket.onclose = (event) => reject(new Error(`closed ${event.code}`));
    });
    const closed = new Promise((resolve) => (socket.onclose = resolve));
    socket.close();
    await closed;
  }
  return summarize(times);
}

/** Opens `count` sockets that then sit idle; returns them for the caller to close. */
export async function openIdleSockets(
  wsBase: string,
  secret: string,
  chats: BenchChat[],
  count: number,
  onProgress?: (line: string) => void,
): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  const tokens = new Map<string, string>();
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, async (_, j) => {
        const chat = chats[(i + j) % chats.length]!;
        const user = (i + j) % 2 === 0 ? chat.customer : chat.vendor;
        const token = tokens.get(user) ?? await tokenFor(secret, user);
        tokens.set(user, token);
        const socket = new WebSocket(`${wsBase}/v1/ws/chat/${chat.id}/?token=${token}`);
        await new Promise<void>((resolve, reject) => {
          socket.onmessage = (event) => {
            if (String(event.data).startsWith(`{"type":"unread_messages"`)) resolve();
          };
          socket.onclose = (event) => reject(new Error(`closed ${event.code}`));
        });
        socket.onmessage = null;
        return socket;
      }),
    );
    sockets.push(...batch);
    if ((i / 100) % 10 === 0) onProgress?.(`  ${sockets.length} idle sockets open`);
  }
  return sockets;
}
