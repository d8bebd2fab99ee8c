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
  duplicates: number;
  outOfOrder: number;
  errors: number;
  latencyMs: Summary;
  ackMs: Summary;
}

interface Side {
  socket: WebSocket;
  userId: string;
  /** seq of the last chat_message this socket saw. */
  lastSeq: number;
  seen: Set<string>;
}

interface Pair {
  chat: BenchChat;
  customer: Side;
  vendor: Side;
}

const isType = (text: string, type: string) => text.startsWith(`{"type":"${type}"`);

/** Drives chats with both sides connected over real WebSockets; sends alternate sides. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const ackTimes: number[] = [];
  let sent = 0, stored = 0, delivered = 0, duplicates = 0, outOfOrder = 0, errors = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  let counter = 0;

  async function open(chat: BenchChat, userId: string): Promise<Side> {
    const token = await tokenFor(options.secret, userId);
    const socket = new WebSocket(`${options.wsBase}/v1/ws/chat/${chat.id}/?token=${token}`);
    const side: Side = { socket, userId, lastSeq: 0, seen: new Set() };
    await new Promise<void>((resolve, reject) => {
      socket.onmessage = (event) => {
        if (isType(event.data, "unread_messages")) resolve();
      };
      socket.onerror = () => reject(new Error("socket error"));
      socket.onclose = (event) => reject(new Error(`closed ${event.code}`));
    });
    return side;
  }

  function receive(pair: Pair, me: Side, other: Side, text: string) {
    if (isType(text, "unread_messages") || isType(text, "message_read")) return;
    const frame = JSON.parse(text);
    if (frame.type === "chat_message") {
      const message = frame.message;
      if (message.seq <= me.lastSeq) {
        if (me.seen.has(message.id)) duplicates++;
        else outOfOrder++;
      } else if (message.seq !== me.lastSeq + 1) outOfOrder++;
      me.lastSeq = Math.max(me.lastSeq, message.seq);
      me.seen.add(message.id);
      if (message.sender_id === other.userId) {
        const start = sentAt.get(message.client_id);
        if (start !== undefined) {
          latencies.push(performance.now() - start);
          delivered++;
        }
        if (options.markRead) {
          me.socket.send(JSON.stringify({ action: "read_message", message_id: message.id }));
        }
      }
    } else if (frame.type === "ack") {
      stored++;
      inFlight--;
      const start = sentAt.get(frame.request_id);
      if (start !== undefined) ackTimes.push(performance.now() - start);
      wake?.();
    } else if (frame.type === "error") {
      errors++;
      inFlight--;
      wake?.();
    }
    void pair;
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
    pair.customer.socket.onmessage = (event) =>
      receive(pair, pair.customer, pair.vendor, event.data);
    pair.vendor.socket.onmessage = (event) => receive(pair, pair.vendor, pair.customer, event.data);
  }

  function sendOne() {
    const pair = pairs[counter % pairs.length]!;
    const fromCustomer = Math.floor(counter / pairs.length) % 2 === 0;
    counter++;
    const from = fromCustomer ? pair.customer : pair.vendor;
    const to = fromCustomer ? pair.vendor : pair.customer;
    const id = `m${counter}`;
    sentAt.set(id, performance.now());
    sent++;
    inFlight++;
    from.socket.send(JSON.stringify({
      action: "send_message",
      request_id: id,
      client_id: id,
      receiver_id: to.userId,
      media_type: "text",
      content: `benchmark message ${counter} with some words in it`,
    }));
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
  for (const pair of pairs) {
    pair.customer.socket.close();
    pair.vendor.socket.close();
  }
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
    errors,
    latencyMs: summarize(latencies),
    ackMs: summarize(ackTimes),
  };
}
