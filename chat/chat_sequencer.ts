import { createDelivery, type Delivery } from "./delivery.ts";
import type { ChatEnvelope } from "./events.ts";
import type { ChatStore } from "./ports.ts";
import { type StoredMessage, toClientMessage } from "./types.ts";

/**
 * The seq of the message an event is about, which it must not reach a socket before: for a
 * `messages_read`, the newest message it marked (see `up_to_marked`), or 0 from an instance that
 * predates it; null for events not about messages.
 */
export function aboutSeq({ frame, up_to_marked }: Delivery["envelope"]): number | null {
  switch (frame.type) {
    case "message_read":
    case "message_deleted":
      return frame.seq;
    case "message_edited":
      return frame.message.seq;
    case "messages_read":
      return up_to_marked ? frame.up_to_seq : 0;
    default:
      return null;
  }
}

/**
 * When the change an event about a message tells of was made (the database's clock), or else
 * when it was sent (its publisher's): a replayed event is sent long after its change.
 */
function madeAt({ frame, sent_at }: Delivery["envelope"]): number {
  const at = frame.type === "message_read" || frame.type === "messages_read"
    ? frame.read_at
    : frame.type === "message_deleted"
    ? frame.deleted_at
    : frame.type === "message_edited"
    ? frame.message.edited_at
    : null;
  const parsed = at ? Date.parse(at) : Number.NaN;
  return Number.isNaN(parsed) ? sent_at : Math.min(parsed, sent_at);
}

/**
 * The longest wait between two reads of a gap the store failed to fill: each failure in a row
 * doubles the wait from `gapWaitMs`, so that a store outage is not asked ten times a second for
 * every chat with a gap.
 */
export const MAX_GAP_RETRY_MS = 5_000;

/**
 * The most messages one chat holds ahead of a gap, and the most one read of the store fills it
 * with. Past it a message is not kept but read from the store with the gap (persist, then
 * publish: the store has it), so that a chat whose gap the store cannot fill for a while (the
 * database away from this instance only, while the others go on writing) does not hold every
 * message sent meanwhile.
 */
export const MAX_HELD_AHEAD = 1_000;

/**
 * The most events about messages (read, edited, deleted) one chat holds until their messages go
 * out. Past it an event is not kept: once the chat's gap is filled, the edits, deletions and read
 * marks made since the first one not kept are read from the store again (`onHeldDropped`), and
 * those its sockets lack go out then.
 */
export const MAX_HELD_BEHIND = 1_000;

/** An event held until the message it is about went out; `stillOwed` is asked then. */
interface HeldEvent {
  afterSeq: number;
  delivery: Delivery;
  stillOwed?: () => boolean;
}

/** What the sequencers of one feed share: one object for all, nothing per chat. */
export interface SequencerDeps {
  store: Pick<ChatStore, "messagesBetween">;
  /** Told of each message read from the store just before it is delivered. */
  onStored: (message: StoredMessage) => void;
  /**
   * Told of the messages a gap fill delivered from the store, before what waited ahead of them
   * goes out: no publisher summed up their unread push, and the message ahead brings only its
   * own receivers' (the other side may be theirs).
   */
  afterStored: (chatId: string, messages: StoredMessage[], chat: ChatEnvelope["chat"]) => void;
  gapWaitMs: number;
  /**
   * Told, once the chat has nothing held any more, that events about its messages were not kept
   * (MAX_HELD_BEHIND were held): those made since `sinceMs` (when the earliest change not kept
   * was made) are to be read from the store.
   */
  onHeldDropped?: (chatId: string, sinceMs: number) => void;
  onError: (error: unknown, context: string) => void;
}

/**
 * One followed chat's events, handed to `deliver` with its messages strictly in seq order.
 * Nothing goes out before `startAfter` says where the chat stood in the store. A message that
 * arrives after a gap waits `gapWaitMs` for the ones before it, which are then read from the
 * store (persist, then publish: the store always has them); events about messages wait for
 * those messages. A class, and its queues made on first use: there is one per followed chat,
 * and most never see a gap.
 */
export class ChatSequencer {
  readonly #chatId: string;
  readonly #deps: SequencerDeps;
  /** Hands an event on to the chat's sockets. */
  readonly #deliver: (delivery: Delivery) => void;
  /** seq of the last chat_message delivered; null until the baseline is read. */
  #lastSeq: number | null = null;
  /** Messages that arrived ahead of a gap, by seq. */
  #ahead: Map<number, Delivery> | undefined;
  /**
   * The highest seq that came ahead of a gap and was not kept (MAX_HELD_AHEAD were held), and
   * the chat's participants it named: the gap is filled from the store up to it.
   */
  #notKept: { upTo: number; chat: ChatEnvelope["chat"] } | undefined;
  /** Events that arrived before the baseline was known. */
  #early: Delivery[] | undefined;
  /**
   * Events about messages (read, deleted, edited) that came before their message went out, or
   * while messages waited ahead of a gap, in arrival order: each goes out once the message it
   * is about, and every message that waited ahead when it came, went out.
   */
  #behind: HeldEvent[] | undefined;
  /** When the first event not kept behind was sent (its publisher's clock); undefined: none. */
  #droppedSince: number | undefined;
  #gapTimer: ReturnType<typeof setTimeout> | undefined;
  /** Reads of the current gap the store failed in a row; only the first is reported. */
  #gapFailures = 0;
  #stopped = false;

  constructor(chatId: string, deliver: (delivery: Delivery) => void, deps: SequencerDeps) {
    this.#chatId = chatId;
    this.#deliver = deliver;
    this.#deps = deps;
  }

  /** seq of the last message delivered; null until `startAfter`. */
  get lastSeq(): number | null {
    return this.#lastSeq;
  }

  /** Messages held ahead of a gap (for tests). */
  get held(): number {
    return this.#ahead?.size ?? 0;
  }

  /** Events held until the messages they are about went out (for tests). */
  get heldBehind(): number {
    return this.#behind?.length ?? 0;
  }

  /**
   * The chat's last stored seq, read once its bus subscription was in force: the messages up
   * to it are history, not delivered; the events that came before it go out now, in order.
   */
  startAfter(storedSeq: number): void {
    this.#lastSeq = storedSeq;
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const delivery of early) this.#release(delivery);
  }

  /** An event as the bus brought it: out now, or once what it must follow is out. */
  receive(delivery: Delivery): void {
    if (this.#lastSeq === null) (this.#early ??= []).push(delivery);
    else this.#release(delivery);
  }

  /**
   * An edit or deletion of message `seq` replayed from the store, in line with the live events
   * about messages; `stillOwed` is asked when it may go out (the message may have come from
   * the store amended meanwhile, or a newer amendment gone out).
   */
  replayed(seq: number, delivery: Delivery, stillOwed: () => boolean): void {
    if (this.#lastSeq === null) return;
    this.#releaseAbout({ afterSeq: seq, delivery, stillOwed });
  }

  /**
   * Messages read from the store, delivered in seq order from the one after the last delivered;
   * returns those delivered. The bus may have delivered some of them while they were being
   * read: those are skipped; a seq missing from `messages` stops the delivery there, and the
   * gap stays to be filled. What waits ahead of them goes out at `releaseAhead()`, so that a
   * caller can first send what these messages are owed.
   */
  deliverStored(messages: readonly StoredMessage[], chat: ChatEnvelope["chat"]): StoredMessage[] {
    const delivered: StoredMessage[] = [];
    for (const message of messages) {
      if (message.seq <= this.#lastSeq!) continue;
      if (message.seq !== this.#lastSeq! + 1) break;
      this.#lastSeq = message.seq;
      this.#deps.onStored(message);
      this.#deliver(createDelivery({
        chat,
        audience: { to: "all" },
        frame: { type: "chat_message", chat_id: this.#chatId, message: toClientMessage(message) },
        sent_at: Date.parse(message.created_at),
      }));
      delivered.push(message);
    }
    return delivered;
  }

  /** Delivers what waited ahead of the gap and behind those messages, now that it may go. */
  releaseAhead(): void {
    const ahead = this.#ahead;
    if (ahead) {
      // what the store delivered while it also waited here
      for (const seq of ahead.keys()) {
        if (seq <= this.#lastSeq!) ahead.delete(seq);
      }
      let next = ahead.get(this.#lastSeq! + 1);
      while (next) {
        ahead.delete(this.#lastSeq! + 1);
        this.#lastSeq! += 1;
        this.#deliver(next);
        next = ahead.get(this.#lastSeq! + 1);
      }
    }
    const behind = this.#behind;
    while (behind && behind.length > 0 && behind[0]!.afterSeq <= this.#lastSeq!) {
      const held = behind.shift()!;
      if (held.stillOwed?.() ?? true) this.#deliver(held.delivery);
    }
    if (this.#notKept && this.#notKept.upTo <= this.#lastSeq!) this.#notKept = undefined;
    if ((ahead?.size ?? 0) === 0 && this.#notKept === undefined) {
      this.#gapFailures = 0;
      if (this.#gapTimer !== undefined) {
        clearTimeout(this.#gapTimer);
        this.#gapTimer = undefined;
      }
      // read again now that what they were about went out, so that they go out at once
      if (this.#droppedSince !== undefined && (behind?.length ?? 0) === 0) {
        const since = this.#droppedSince;
        this.#droppedSince = undefined;
        this.#deps.onHeldDropped?.(this.#chatId, since);
      }
    }
  }

  /** The chat is no longer followed: no gap is filled from now on. */
  stop(): void {
    this.#stopped = true;
    if (this.#gapTimer !== undefined) clearTimeout(this.#gapTimer);
  }

  /** Out now when nothing it must follow is still to go out, else held behind. */
  #releaseAbout(held: HeldEvent) {
    const afterSeq = Math.max(
      held.afterSeq,
      this.#notKept?.upTo ?? 0,
      ...(this.#ahead?.keys() ?? []),
    );
    if ((this.#behind?.length ?? 0) > 0 || afterSeq > this.#lastSeq!) {
      const behind = this.#behind ??= [];
      if (behind.length < MAX_HELD_BEHIND) behind.push({ ...held, afterSeq });
      else {
        const at = madeAt(held.delivery.envelope);
        this.#droppedSince = Math.min(this.#droppedSince ?? at, at);
      }
      return;
    }
    if (held.stillOwed?.() ?? true) this.#deliver(held.delivery);
  }

  #release(delivery: Delivery) {
    const frame = delivery.envelope.frame;
    if (frame.type !== "chat_message") {
      const about = aboutSeq(delivery.envelope);
      if (about === null) return this.#deliver(delivery);
      return this.#releaseAbout({ afterSeq: about, delivery });
    }
    const seq = frame.message.seq;
    if (seq <= this.#lastSeq!) return; // already delivered (or in the store before we joined)
    if (seq > this.#lastSeq! + 1) {
      const ahead = this.#ahead ??= new Map();
      if (ahead.size < MAX_HELD_AHEAD) ahead.set(seq, delivery);
      else if (!ahead.has(seq)) {
        this.#notKept = {
          upTo: Math.max(seq, this.#notKept?.upTo ?? 0),
          chat: delivery.envelope.chat,
        };
      }
      this.#gapTimer ??= setTimeout(() => this.#fillGap(), this.#deps.gapWaitMs);
      return;
    }
    this.#lastSeq = seq;
    this.#deliver(delivery);
    this.releaseAhead();
  }

  async #fillGap() {
    this.#gapTimer = undefined;
    const ahead = this.#ahead ??= new Map();
    const notKept = this.#notKept;
    if (this.#stopped || (ahead.size === 0 && notKept === undefined)) return;
    // up to the first message held, or, with none held, the last one not kept
    const firstAhead = ahead.size > 0 ? Math.min(...ahead.keys()) : undefined;
    const chat = firstAhead === undefined ? notKept!.chat : ahead.get(firstAhead)!.envelope.chat;
    const upTo = firstAhead === undefined ? notKept!.upTo : firstAhead - 1;
    try {
      const missing = await this.#deps.store.messagesBetween(
        this.#chatId,
        this.#lastSeq! + 1,
        Math.min(upTo, this.#lastSeq! + MAX_HELD_AHEAD),
      );
      if (this.#stopped) return;
      this.#gapFailures = 0;
      const delivered = this.deliverStored(missing, chat);
      if (delivered.length > 0) this.#deps.afterStored(this.#chatId, delivered, chat);
    } catch (error) {
      if (++this.#gapFailures === 1) this.#deps.onError(error, "gap fill");
    }
    this.releaseAhead();
    if ((ahead.size > 0 || this.#notKept !== undefined) && !this.#stopped) {
      const waitMs = Math.min(this.#deps.gapWaitMs * 2 ** this.#gapFailures, MAX_GAP_RETRY_MS);
      this.#gapTimer ??= setTimeout(() => this.#fillGap(), waitMs);
    }
  }
}
