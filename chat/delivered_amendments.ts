import type { ChatFrame } from "./events.ts";
import type { StoredRead } from "./ports.ts";
import { SeqRanges } from "./seq_ranges.ts";
import { type Message, type StoredMessage, toClientMessage } from "./types.ts";

/**
 * How long an amendment delivered here is remembered, so that a replay does not send it again:
 * longer than a NATS outage plus its detection usually lasts (a replay of a longer one may
 * repeat what was delivered before it).
 */
const REMEMBERED_MS = 15 * 60_000;
const MAX_REMEMBERED = 50_000;
/** The `messages_read` remembered per chat for `readSince`, the latest. */
const MAX_READS_UP_TO = 100;

/** The newest edit or deletion of a message that this instance delivered. */
interface Delivered {
  editedAt: number | null;
  /**
   * The edit at `editedAt` went out with the store's state of the message (a replay, or the
   * message read from the store): a live edit stamped the same millisecond is that one, late.
   */
  editFromStore: boolean;
  deleted: boolean;
}

/**
 * Entries kept for REMEMBERED_MS, at most MAX_REMEMBERED: the least recently set go first.
 */
class RecentlySet<V> {
  #entries = new Map<string, { value: V; at: number }>();

  get(key: string): V | undefined {
    return this.#entries.get(key)?.value;
  }

  set(key: string, value: V): void {
    const now = Date.now();
    this.#entries.delete(key);
    this.#entries.set(key, { value, at: now });
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= MAX_REMEMBERED && entry.at >= now - REMEMBERED_MS) break;
      this.#entries.delete(oldest);
    }
  }
}

/**
 * The edits, deletions and read marks this instance delivered, by message, so that each goes
 * to the sockets once whichever way it comes: a replay from the store (see amendment_replay.ts)
 * sends only what is `missing…`, and a live event the bus delayed past a replay that sent it is
 * `alreadyDelivered`.
 */
export function createDeliveredAmendments() {
  const delivered = new RecentlySet<Delivered>();
  // read marks apart: they are far more, and would push edits and deletions out
  /** Per chat, the seqs of the messages whose read mark was delivered. */
  const readDelivered = new RecentlySet<SeqRanges>();
  /** Per chat and reader, the highest `up_to_seq` of a `messages_read` delivered. */
  const readUpTo = new RecentlySet<number>();
  /**
   * Per chat, reader and `read_at`: a replay delivered marks of that time one by one. The marks
   * of one `messages_read` share their time, and a replay sends every one of them that the
   * sockets lack (not those of messages deleted since, nor of those delivered as read), so its
   * live event, come late, would only tell them again.
   */
  const replayedBatches = new RecentlySet<true>();
  /**
   * When the read marks delivered were made: per chat and seq for `message_read` (and messages
   * delivered from the store as read), per chat the latest `messages_read` in delivery order. A
   * live edit committed before a mark of its message but heard after it carries the message as
   * unread (see `readSince`).
   */
  const readAt = new RecentlySet<string>();
  const readsUpTo = new RecentlySet<Array<{ readerId: string; upTo: number; readAt: string }>>();

  function remember(
    messageId: string,
    change: { editedAt?: number; deleted?: boolean; fromStore: boolean },
  ) {
    const known = delivered.get(messageId);
    const knownAt = known?.editedAt ?? 0;
    const at = change.editedAt ?? 0;
    delivered.set(messageId, {
      editedAt: Math.max(at, knownAt) || null,
      editFromStore: at > knownAt
        ? change.fromStore
        : (known?.editFromStore ?? false) || (at === knownAt && change.fromStore),
      deleted: change.deleted === true || known?.deleted === true,
    });
  }

  function rememberRead(chatId: string, seq: number, at: string | null) {
    const seqs = readDelivered.get(chatId) ?? new SeqRanges();
    seqs.add(seq);
    readDelivered.set(chatId, seqs);
    if (at !== null) readAt.set(`${chatId} ${seq}`, at);
  }

  const readerKey = (chatId: string, readerId: string) => `${chatId} ${readerId}`;
  const batchKey = (chatId: string, readerId: string, readAt: string) =>
    `${chatId} ${readerId} ${Date.parse(readAt)}`;

  return {
    /**
     * Notes an event as it is delivered; `fromStore` when it carries the store's state of the
     * message (a replay) rather than a live event; `upToMarked` when a `messages_read` says the
     * newest message it marked (its envelope's `up_to_marked`).
     */
    note(
      frame: ChatFrame | { type: "unread_messages" },
      fromStore: boolean,
      upToMarked = false,
    ): void {
      switch (frame.type) {
        case "message_deleted":
          return remember(frame.message_id, { deleted: true, fromStore });
        case "message_edited":
          if (frame.message.edited_at === null) return;
          return remember(frame.message.id, {
            editedAt: Date.parse(frame.message.edited_at),
            fromStore,
          });
        case "message_read": {
          if (fromStore) {
            replayedBatches.set(batchKey(frame.chat_id, frame.reader_id, frame.read_at), true);
          }
          return rememberRead(frame.chat_id, frame.seq, frame.read_at);
        }
        case "messages_read": {
          const key = readerKey(frame.chat_id, frame.reader_id);
          // from an instance that predates up_to_marked, the seq asked: maybe past messages
          // sent after it, which it did not mark
          if (upToMarked) {
            const marks = readsUpTo.get(frame.chat_id) ?? [];
            marks.push({ readerId: frame.reader_id, upTo: frame.up_to_seq, readAt: frame.read_at });
            if (marks.length > MAX_READS_UP_TO) marks.shift();
            readsUpTo.set(frame.chat_id, marks);
          }
          return readUpTo.set(key, Math.max(frame.up_to_seq, readUpTo.get(key) ?? 0));
        }
      }
    },

    /** Notes a message delivered from the store: its amendments so far came with it. */
    noteStored(message: StoredMessage): void {
      if (message.is_read) rememberRead(message.chat_id, message.seq, message.read_at);
      if (message.deleted_at === null && message.edited_at === null) return;
      remember(message.id, {
        deleted: message.deleted_at !== null,
        ...(message.edited_at === null ? {} : { editedAt: Date.parse(message.edited_at) }),
        fromStore: true,
      });
    },

    /**
     * True when a live event carries what the sockets already had: a deletion delivered, an
     * edit no newer than the one delivered (or of a message delivered as deleted: the store
     * edits no deleted message, so the edit is older), a read mark delivered, a read up to a
     * seq whose marks a replay delivered. Live edits of one millisecond both go out, unless
     * the first came from the store. A map lookup or two, and none for messages: this is the
     * hot path.
     */
    alreadyDelivered(frame: ChatFrame | { type: "unread_messages" }): boolean {
      switch (frame.type) {
        case "message_deleted":
          return delivered.get(frame.message_id)?.deleted === true;
        case "message_edited": {
          const known = delivered.get(frame.message.id);
          if (known === undefined || frame.message.edited_at === null) return false;
          if (known.deleted) return true;
          const at = Date.parse(frame.message.edited_at);
          return (known.editedAt ?? 0) > at || (known.editedAt === at && known.editFromStore);
        }
        case "message_read":
          return readDelivered.get(frame.chat_id)?.has(frame.seq) === true;
        case "messages_read":
          return replayedBatches.get(batchKey(frame.chat_id, frame.reader_id, frame.read_at)) ===
            true;
        default:
          return false;
      }
    },

    /**
     * The `read_at` of a read mark of `message` delivered here, when the message says it is
     * unread: an edit committed before the mark, whose event the bus brought after it (its
     * instance published it later than the mark's did), would show the message unread again.
     * `customerId`: the chat's customer, to tell which readers' `messages_read` mark it.
     */
    readSince(message: Message, customerId: string): string | undefined {
      if (message.is_read || message.deleted) return undefined;
      const marked = readAt.get(`${message.chat_id} ${message.seq}`);
      if (marked !== undefined) return marked;
      const fromCustomer = message.sender_id === customerId;
      // in delivery order: the first that reaches the message marked it
      return readsUpTo.get(message.chat_id)?.find((mark) =>
        mark.upTo >= message.seq && (mark.readerId === customerId) !== fromCustomer
      )?.readAt;
    },

    /** The `message_read` a client lacks for a stored read mark; null when it has it. */
    missingRead(read: StoredRead): ChatFrame | null {
      if (readDelivered.get(read.chat_id)?.has(read.seq)) return null;
      if (delivered.get(read.message_id)?.deleted) return null;
      if ((readUpTo.get(readerKey(read.chat_id, read.reader_id)) ?? 0) >= read.seq) return null;
      return { type: "message_read", ...read };
    },

    /** The event that brings a client up to the message's stored state; null when it has it. */
    missingEvent(message: StoredMessage): ChatFrame | null {
      const known = delivered.get(message.id);
      // a deletion delivered meanwhile is newer than anything the store was read for
      if (known?.deleted) return null;
      if (message.deleted_at !== null) {
        return {
          type: "message_deleted",
          chat_id: message.chat_id,
          message_id: message.id,
          seq: message.seq,
          deleted_by: message.deleted_by ?? message.sender_id,
          deleted_at: message.deleted_at,
        };
      }
      if (message.edited_at === null) return null;
      if ((known?.editedAt ?? 0) >= Date.parse(message.edited_at)) return null;
      return {
        type: "message_edited",
        chat_id: message.chat_id,
        message: toClientMessage(message),
      };
    },
  };
}
