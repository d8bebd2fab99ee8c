import type { Sql } from "postgres";
import { otherSide, type Side, type StoredMessage, UNREAD_PREVIEW_LIMIT } from "../chat/types.ts";
import type { ChatAfterRead } from "./read_batch.ts";
import { messageColumns, type MessageRow, toStoredMessage } from "./rows.ts";
import { arrayLiteral } from "./array_literal.ts";

/** Chat sides whose unread window is remembered; least recently used go first. */
const MAX_CACHED_WINDOWS = 2_000;

/** A chat side's newest unread messages (oldest first) as of one database state of its chat. */
export interface UnreadWindow {
  /** The chat's unread_epoch and last_seq the window is exact for. */
  epoch: number;
  lastSeq: number;
  messages: StoredMessage[];
}

/** Read marks as committed: the chat as their statement left it, and what they marked. */
export interface ReadsCommitted {
  after: ChatAfterRead;
  wasRead: (message: StoredMessage) => boolean;
}

/**
 * The message writer's unread windows by `chatId:side`: what the `unread_messages` push
 * carries, kept in memory so that a message does not read it again. A window is trusted only
 * for the unread_epoch and last_seq it records; the chat's row tells when it is stale.
 */
export function createUnreadWindows() {
  const windows = new Map<string, UnreadWindow>();

  function remember(key: string, window: UnreadWindow): void {
    windows.delete(key);
    windows.set(key, window);
    if (windows.size > MAX_CACHED_WINDOWS) windows.delete(windows.keys().next().value!);
  }

  return {
    get: (key: string): UnreadWindow | undefined => windows.get(key),
    remember,
    forget: (key: string): void => void windows.delete(key),

    /**
     * The windows of a chat after read marks. The marks bumped the chat's unread_epoch, which would
     * have both windows read again at the chat's next message; when nothing else changed the
     * chat in between, each is kept exact instead, less what was read, as long as it still
     * holds every one of its side's newest unread. Null: the window must be read again.
     */
    afterRead(chatId: string, reads: ReadsCommitted): Map<string, UnreadWindow | null> {
      const { after, wasRead } = reads;
      const result = new Map<string, UnreadWindow | null>();
      for (const side of ["customer", "vendor"] as const) {
        const key = `${chatId}:${side}`;
        const window = windows.get(key);
        if (!window) continue;
        const unread = side === "customer" ? after.customerUnread : after.vendorUnread;
        const remaining = window.messages.filter((message) => !wasRead(message));
        const exact = window.epoch === after.epoch - 1 && window.lastSeq === after.lastSeq &&
          remaining.length === Math.min(unread, UNREAD_PREVIEW_LIMIT);
        result.set(
          key,
          exact ? { epoch: after.epoch, lastSeq: after.lastSeq, messages: remaining } : null,
        );
      }
      return result;
    },

    /** Keeps what afterRead worked out (once its statement has committed). */
    apply(changed: ReadonlyMap<string, UnreadWindow | null>): void {
      for (const [key, window] of changed) {
        if (window) remember(key, window);
        else windows.delete(key);
      }
    },
  };
}

/** A chat side's unread as one snapshot of the database shows it. */
export interface UnreadState extends UnreadWindow {
  /** All of the side's unread, as the chat's counter has it. */
  count: number;
}

/**
 * Reads each chat side's newest unread, oldest first, by `chatId:side`, with the chat's
 * unread_epoch, last_seq and the side's unread counter of the same snapshot, which the window
 * is exact for.
 */
export async function readUnreadWindows(
  sql: Sql,
  sides: ReadonlyArray<{ chatId: string; side: Side }>,
): Promise<Map<string, UnreadState>> {
  const rows = await sql<
    Array<
      & { side: Side; window_chat_id: string; epoch: number; last_seq: number; unread: number }
      & (MessageRow | { [column in keyof MessageRow]: null })
    >
  >`
    select s.side, s.chat_id as window_chat_id, c.unread_epoch as epoch, c.last_seq,
           case s.side when 'customer' then c.customer_unread else c.vendor_unread end as unread,
           ${messageColumns(sql, "m")}
    from unnest(
      ${arrayLiteral(sides.map((item) => item.chatId))}::uuid[],
      ${arrayLiteral(sides.map((item) => item.side))}::text[],
      ${arrayLiteral(sides.map((item) => otherSide(item.side)))}::text[]
    ) as s(chat_id, side, sender_side)
    join chats c on c.id = s.chat_id
    left join lateral (
      select ${messageColumns(sql)} from messages
      where chat_id = s.chat_id and sender_side = s.sender_side and not is_read
        and deleted_at is null
      order by seq desc limit ${UNREAD_PREVIEW_LIMIT}
    ) m on true`;
  const states = new Map<string, UnreadState>();
  for (const row of rows) {
    const key = `${row.window_chat_id}:${row.side}`;
    let state = states.get(key);
    if (!state) {
      state = { epoch: row.epoch, lastSeq: row.last_seq, count: row.unread, messages: [] };
      states.set(key, state);
    }
    if (row.id !== null) state.messages.push(toStoredMessage(row));
  }
  for (const state of states.values()) state.messages.sort((a, b) => a.seq - b.seq);
  return states;
}
