import { type ChatClient, ClientClosedError, createChatClient } from "../client/mod.ts";
import { type BenchChat, tokenFor } from "./setup.ts";
import { summarize, type Summary } from "./stats.ts";

export interface LoadOptions {
  wsBase: string;
  secret: string;
  chats: BenchChat[];
  seconds: number;
  /** Open loop: messages per second in total. */
  rate?: number;
  /** Closed loop: messages in flight in total. */
  concurrency?: number;
  /** The receiver marks each message read as it arrives. */
  markRead: boolean;
  onProgress?: (line: string) => void;
}

export interface LoadResult {
  mode: string;
  sent: number;
  stored: number;
  delivered: number;
  storedPerSecond: number;
  deliveredPerSecond: number;
  lost: number;
  /** Messages the clients dropped as already seen (the service sent them twice). */
  duplicates: number;
  /** seq gaps the clients had to fill from the store (the service skipped or reordered). */
  outOfOrder: number;
  errors: number;
  latencyMs: Summary;
  ackMs: Summary;
}

interface Side {
  client: ChatClient;
  userId: string;
}

interface Pair {
  chat: BenchChat;
  customer: Side;
  vendor: Side;
}

/**
 * Drives chats with both sides connected through the client library (client/), over real
 * WebSockets; sends alternate sides. The clients release messages once and in order, so what
 * the service got wrong shows in their counts of duplicates and filled gaps.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const ackTimes: number[] = [];
  let sent = 0, stored = 0, delivered = 0, errors = 0, readErrors = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  let counter = 0;

  async function open(chat: BenchChat, userId: string): Promise<Side> {
    const client = createChatClient({
      url: options.wsBase,
      token: await tokenFor(options.secret, userId),
      chatId: chat.id,
      // a service under load may answer late; late is measured, not an error
      timeoutMs: 120_000,
    });
    await client.ready();
    return { client, userId };
  }

  function listen(me: Side, other: Side) {
    me.client.on("chat_message", ({ message }) => {
      if (message.sender_id !== other.userId) return;
      const start = message.client_id === null ? undefined : sentAt.get(message.client_id);
      if (start !== undefined) {
        latencies.push(performance.now() - start);
        delivered++;
      }
      if (options.markRead) {
        me.client.request({ action: "read_message", message_id: message.id }).catch((error) => {
          // reads still in flight when the run ends are cut by close(): not the service's error
          if (!(error instanceof ClientClosedError)) readErrors++;
        });
      }
    });
  }

  const pairs: Pair[] = [];
  for (let i = 0; i < options.chats.length; i += 20) {
    const batch = options.chats.slice(i, i + 20);
    pairs.push(
      ...await Promise.all(batch.map(async (chat) => {
        const [customer, vendor] = await Promise.all([
          open(chat, chat.customer),
          open(chat, chat.vendor),
        ]);
        return { chat, customer, vendor };
      })),
    );
  }
  for (const pair of pairs) {
    listen(pair.customer, pair.vendor);
    listen(pair.vendor, pair.customer);
  }

  function sendOne() {
    const pair = pairs[counter % pairs.length]!;
    const fromCustomer = Math.floor(counter / pairs.length) % 2 === 0;
    counter++;
    const from = fromCustomer ? pair.customer : pair.vendor;
    const to = fromCustomer ? pair.vendor : pair.customer;
    const id = `m${counter}`;
    const start = performance.now();
    sentAt.set(id, start);
    sent++;
    inFlight++;
    from.client.request({
      action: "send_message",
      client_id: id,
      receiver_id: to.userId,
      media_type: "text",
      content: `benchmark message ${counter} with some words in it`,
    }).then(
      () => {
        stored++;
        ackTimes.push(performance.now() - start);
      },
      () => errors++,
    ).finally(() => {
      inFlight--;
      wake?.();
    });
  }

  const started = performance.now();
  const endAt = started + options.seconds * 1000;
  const progress = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000;
    options.onProgress?.(
      `  ${
        elapsed.toFixed(0)
      }s sent ${sent} stored ${stored} delivered ${delivered} in flight ${inFlight}`,
    );
  }, 1000);
  try {
    if (options.rate) {
      // open loop: a schedule by the clock, whatever the service does
      const perMs = options.rate / 1000;
      while (performance.now() < endAt) {
        const due = Math.floor((performance.now() - started) * perMs);
        while (sent < due) sendOne();
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    } else {
      const concurrency = options.concurrency ?? 100;
      while (performance.now() < endAt) {
        while (inFlight < concurrency) sendOne();
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
    // let the last ones land
    const drainUntil = performance.now() + 10_000;
    while ((stored + errors < sent || delivered < stored) && performance.now() < drainUntil) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    clearInterval(progress);
  }
  const elapsed = (endAt - started) / 1000;
  const clients = pairs.flatMap((pair) => [pair.customer.client, pair.vendor.client]);
  const duplicates = clients.reduce((sum, client) => sum + client.stats.duplicates, 0);
  const outOfOrder = clients.reduce((sum, client) => sum + client.stats.gapsFilled, 0);
  await Promise.all(clients.map((client) => client.close()));
  return {
    mode: options.rate ? `open loop ${options.rate}/s` : `closed loop ${options.concurrency}`,
    sent,
    stored,
    delivered,
    storedPerSecond: Math.round(stored / elapsed),
    deliveredPerSecond: Math.round(delivered / elapsed),
    lost: stored - delivered,
    duplicates,
    outOfOrder,
    errors: errors + readErrors,
    latencyMs: summarize(latencies),
    ackMs: summarize(ackTimes),
  };
}
