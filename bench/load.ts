import { type CpuReading, type CpuUse, cpuUse } from "./cpu.ts";
import { Participant } from "./participant.ts";
import { type BenchChat, tokenFor } from "./setup.ts";
import { summarize, type Summary } from "./stats.ts";

export interface LoadOptions {
  wsBase: string;
  secret: string;
  chats: BenchChat[];
  seconds: number;
  /**
   * Seconds of the same load before the measured ones: their messages are checked like the
   * others (lost, duplicated, out of order) but count in no rate or latency, so that the
   * figures are the service's steady state, not its first compilations and prepared statements.
   */
  warmupSeconds: number;
  /** Open loop: messages per second in total. */
  rate?: number;
  /** Closed loop: messages in flight in total. */
  concurrency?: number;
  /** The receiver marks each message read as it arrives. */
  markRead: boolean;
  onProgress?: (line: string) => void;
  /** Read as the measured seconds begin and as they end: the CPU their messages took. */
  readCpu?: () => Promise<CpuReading>;
}

export interface LoadResult {
  mode: string;
  sent: number;
  stored: number;
  delivered: number;
  /** Rates and latencies leave out the warm-up's messages; the counts below take in all. */
  storedPerSecond: number;
  deliveredPerSecond: number;
  /**
   * Acknowledged messages that never reached the other side. A send answered with an error may
   * still have been stored and delivered: it counts in `delivered`, never against this.
   */
  lost: number;
  /**
   * Messages the clients dropped as already seen: a seq sent twice, or a send that came again
   * under a seq of its own (the service stored it twice).
   */
  duplicates: number;
  /** Messages that came after a seq gap or behind a later one (the service skipped or reordered). */
  outOfOrder: number;
  /**
   * `unread_messages` frames the receivers got after messages (one per message delivered, by the
   * contract); the one each socket gets as it opens is left out.
   */
  unreadPushes: number;
  /**
   * Sends answered with an error, or not answered by the end of the drain (the sockets are then
   * closed), and error frames that answer no request.
   */
  errors: number;
  /** From send to delivery and to ack; in the open loop from when the message was due. */
  latencyMs: Summary;
  ackMs: Summary;
  /** With `readCpu`: the CPU the measured seconds took. */
  cpu?: CpuUse;
}

interface Side {
  client: Participant;
  userId: string;
}

interface Pair {
  chat: BenchChat;
  customer: Side;
  vendor: Side;
}

/**
 * Drives chats with both sides connected over real WebSockets (a lean participant, see
 * participant.ts); sends alternate sides. Each socket checks the seq of every message it gets,
 * so what the service got wrong shows in the counts of duplicates and out-of-order messages.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  /** When each message was sent; those sent before `measuredFrom` are the warm-up's. */
  const sentAt = new Map<string, number>();
  const acknowledged: string[] = [];
  const deliveredIds = new Set<string>();
  const latencies: number[] = [];
  /** The slowest delivery since the last progress line: a stall shows as it happens. */
  let slowestSinceProgress = 0;
  const ackTimes: number[] = [];
  let sent = 0, stored = 0, delivered = 0, errors = 0;
  let storedMeasured = 0, deliveredMeasured = 0, storedTwice = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  let counter = 0;

  async function open(chat: BenchChat, userId: string): Promise<Side> {
    const token = await tokenFor(options.secret, userId);
    return { client: await Participant.open(options.wsBase, chat.id, token), userId };
  }

  function listen(me: Side, other: Side) {
    me.client.onMessage((message) => {
      if (message.sender_id !== other.userId) return;
      const start = message.client_id === null ? undefined : sentAt.get(message.client_id);
      if (start !== undefined && deliveredIds.has(message.client_id!)) {
        // one send stored twice, under a seq of its own: as much a duplicate as one seq twice
        storedTwice++;
      } else if (start !== undefined) {
        delivered++;
        deliveredIds.add(message.client_id!);
        slowestSinceProgress = Math.max(slowestSinceProgress, performance.now() - start);
        if (start >= measuredFrom) {
          latencies.push(performance.now() - start);
          deliveredMeasured++;
        }
      }
      // a failed read comes back as an error frame, counted by the participant
      if (options.markRead) me.client.send({ action: "read_message", message_id: message.id });
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

  /** Who sends message `n` (from 0), and to whom: every side of every pair in turn. */
  function turnOf(n: number): { from: Side; to: Side } {
    const pair = pairs[n % pairs.length]!;
    const fromCustomer = Math.floor(n / pairs.length) % 2 === 0;
    return fromCustomer
      ? { from: pair.customer, to: pair.vendor }
      : { from: pair.vendor, to: pair.customer };
  }

  /**
   * Passes over the senders whose socket the service closed; false when every one is closed.
   * Their sends are refused at once, and the closed loop would make them again at once, with
   * no timer running, until its end.
   */
  function nextSenderOpen(): boolean {
    for (let tries = 0; tries < pairs.length * 2; tries++, counter++) {
      if (turnOf(counter).from.client.open) return true;
    }
    return false;
  }

  /**
   * `dueAt`: in the open loop, when the schedule wanted this message out. It is timed from
   * then, not from when it went out: a load generator that fell behind (a stall, a burst to
   * catch up) must not hide the wait from the latencies (coordinated omission).
   */
  function sendOne(dueAt?: number) {
    const { from, to } = turnOf(counter);
    counter++;
    const id = `m${counter}`;
    const start = dueAt ?? performance.now();
    sentAt.set(id, start);
    const warmup = start < measuredFrom;
    sent++;
    inFlight++;
    from.client.request({
      action: "send_message",
      request_id: id,
      client_id: id,
      receiver_id: to.userId,
      media_type: "text",
      content: `benchmark message ${counter} with some words in it`,
    }).then(
      () => {
        stored++;
        acknowledged.push(id);
        if (warmup) return;
        storedMeasured++;
        ackTimes.push(performance.now() - start);
      },
      () => errors++,
    ).finally(() => {
      inFlight--;
      wake?.();
    });
  }

  const started = performance.now();
  const measuredFrom = started + options.warmupSeconds * 1000;
  const endAt = measuredFrom + options.seconds * 1000;
  /** Messages sent before the measured seconds; undefined until they begin. */
  let sentBeforeWindow: number | undefined;
  let cpuAtBegin: Promise<CpuReading> | undefined;
  let cpu: CpuUse | undefined;
  const beginWindowWhenDue = () => {
    if (sentBeforeWindow !== undefined || performance.now() < measuredFrom) return;
    sentBeforeWindow = sent;
    // not awaited: the reading (a process started to read /proc) takes its snapshot as it
    // starts, and waiting for it would hold the sends up
    cpuAtBegin = options.readCpu?.();
    // a failed reading is thrown where it is awaited, after the window, not left unhandled
    cpuAtBegin?.catch(() => {});
  };
  // the closed loop waits for an answer: a service that stops answering must not hold the
  // run past the start of the measured seconds or their end (a millisecond late, not early)
  const clock = [measuredFrom, endAt].map((at) =>
    setTimeout(() => wake?.(), Math.max(0, at - performance.now()) + 1)
  );
  const progress = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000;
    options.onProgress?.(
      `  ${
        elapsed.toFixed(0)
      }s sent ${sent} stored ${stored} delivered ${delivered} in flight ${inFlight} slowest ${
        slowestSinceProgress.toFixed(1)
      } ms`,
    );
    slowestSinceProgress = 0;
  }, 1000);
  try {
    if (options.rate) {
      // open loop: a schedule by the clock, whatever the service does
      const perMs = options.rate / 1000;
      for (;;) {
        beginWindowWhenDue();
        const now = performance.now();
        // up to the end, also when the loop comes to it late: what was due before it goes out
        const due = Math.floor((Math.min(now, endAt) - started) * perMs);
        // the message sent as number n (from 1) is due when n / perMs have passed
        while (sent < due) sendOne(started + (sent + 1) / perMs);
        if (now >= endAt) break;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    } else {
      const concurrency = options.concurrency ?? 100;
      while (performance.now() < endAt) {
        beginWindowWhenDue();
        // with every socket closed, the loop waits for the clock (see `clock`)
        while (inFlight < concurrency && nextSenderOpen()) sendOne();
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
    const cpuAtEnd = await options.readCpu?.();
    // per message sent in the window: at a steady rate as many are handled while it lasts
    if (cpuAtBegin && cpuAtEnd) cpu = cpuUse(await cpuAtBegin, cpuAtEnd, sent - sentBeforeWindow!);
    // let the last ones land; by id, as a send answered with an error may have been delivered
    // too, and would stand in for an acknowledged one still on its way
    const drainUntil = performance.now() + 10_000;
    const undelivered = () => acknowledged.some((id) => !deliveredIds.has(id));
    while ((stored + errors < sent || undelivered()) && performance.now() < drainUntil) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    clearInterval(progress);
    clock.forEach(clearTimeout);
  }
  const elapsed = (endAt - measuredFrom) / 1000;
  const clients = pairs.flatMap((pair) => [pair.customer.client, pair.vendor.client]);
  const total = (count: (client: Participant) => number) =>
    clients.reduce((sum, client) => sum + count(client), 0);
  await Promise.all(clients.map((client) => client.close()));
  return {
    mode: `${options.rate ? `open loop ${options.rate}/s` : `closed loop ${options.concurrency}`}${
      options.warmupSeconds > 0 ? `, after ${options.warmupSeconds} s of warm-up` : ""
    }`,
    sent,
    stored,
    delivered,
    storedPerSecond: Math.round(storedMeasured / elapsed),
    deliveredPerSecond: Math.round(deliveredMeasured / elapsed),
    lost: acknowledged.filter((id) => !deliveredIds.has(id)).length,
    duplicates: storedTwice + total((client) => client.stats.duplicates),
    outOfOrder: total((client) => client.stats.outOfOrder),
    unreadPushes: total((client) => client.stats.unreadPushes),
    errors: errors + total((client) => client.stats.errors),
    latencyMs: summarize(latencies),
    ackMs: summarize(ackTimes),
    ...(cpu ? { cpu } : {}),
  };
}
