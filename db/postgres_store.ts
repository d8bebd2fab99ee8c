import type { PendingQuery, Row, Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import { unknownMedia } from "../chat/media.ts";
import type {
  ChatStore,
  HistoryQuery,
  InsertedMessage,
  NewMessage,
  Page,
  StoredRead,
  StoredUnread,
} from "../chat/ports.ts";
import { otherSide, type Side, type StoredMessage } from "../chat/types.ts";
import { errorCode, QUERY_CANCELED, STORE_TIMEOUT_MS, withErrorTranslation } from "./errors.ts";
import { deleteUnsentMedia, insertMedia, selectMedia } from "./media_rows.ts";
import { createChatQueries } from "./chat_queries.ts";
import { inRecentWindow, recentWindowBounds } from "./recent_window.ts";
import { createModerationQueries } from "./moderation_queries.ts";
import { createMessageWriter } from "./message_writer.ts";
import { type ChatAfterRead, chatAfterRead } from "./read_batch.ts";
import { withWholeResults } from "./whole_results.ts";
import { createStoreCalls } from "./store_calls.ts";
import { messageColumns, type MessageRow, toStoredMessage } from "./rows.ts";
import { transaction } from "./transactions.ts";
import { CANCEL_AHEAD_MS, cancelledOnAbort } from "./statement_deadline.ts";
import { arrayLiteral } from "./array_literal.ts";
import { bannedNow, readAsked } from "./asked_reads.ts";
import { deleteOwnMessage, editOwnMessage } from "./own_message_changes.ts";
import { deleteMessage } from "./message_changes.ts";

/**
 * The longest a refused send_message retry waits for a write of its chat under way
 * (messageByClientId's `afterWritesUnderWay`): the writer has answered every batch by then (it
 * cancels one before its oldest sender's STORE_TIMEOUT_MS runs out), and the lookup after the
 * wait still answers within the retry's own.
 */
const WRITES_UNDER_WAY_WAIT_MS = STORE_TIMEOUT_MS - CANCEL_AHEAD_MS;

/** Thrown inside a transaction to roll it back when a `client_id` was seen before. */
class DuplicateClientId extends Error {}

/**
 * The chat store over postgres.js; every query is a tagged template (parameterised). Messages
 * and read marks are here; chats (chat_queries.ts) and moderation (moderation_queries.ts) have
 * files of their own. `writerSql` is for the message writer: main.ts gives it connections of its own, one per lane
 * (`WRITER_LANES`). From a shared pool each batch goes to the connection idle longest, a
 * different backend each time; with two kept busy, PostgreSQL took 22 – 33 % less CPU per
 * message (BENCHMARKS.md, "Seventh session").
 */
export function createPostgresStore(pool: Sql, writerPool: Sql = pool): ChatStore {
  const calls = createStoreCalls();
  const sql = withWholeResults(pool, calls);
  // the writer cancels its own statements (message_writer.ts), at its own deadlines
  const writerSql = withWholeResults(writerPool);
  const moderation = createModerationQueries(sql);

  async function selectMessage(db: Sql, messageId: string) {
    const [row] = await db<MessageRow[]>`select ${
      messageColumns(db)
    } from messages where id = ${messageId}`;
    return row ? toStoredMessage(row) : null;
  }

  /**
   * One message in its own transaction: the careful path when a batch meets a conflict. On the
   * writer's connections, as the batch was, so that a chat row held from outside fails it after
   * the writer's lock_timeout instead of holding its lane until the store timeout. A lane uses
   * one connection at a time (this transaction, then the read of a duplicate), and the writer
   * has one per lane: no lane waits for a connection another holds while it waits itself. Once
   * `signal` aborts, the statement in flight is cancelled, so that it gives the connection back.
   */
  async function insertSingle(message: NewMessage, signal: AbortSignal): Promise<InsertedMessage> {
    try {
      return await transaction(writerSql, async (tx) => {
        // The chat row lock orders writers of one chat: seq is gapless, chats never wait
        // on each other.
        const [chat] = await cancelledOnAbort(
          tx<Array<{ last_seq: number }>>`
          update chats set
            last_seq = last_seq + 1,
            updated_at = greatest(updated_at, date_trunc('milliseconds', now())),
            customer_unread = customer_unread + ${message.sender_side === "vendor" ? 1 : 0},
            vendor_unread = vendor_unread + ${message.sender_side === "customer" ? 1 : 0}
          where id = ${message.chat_id}
            -- the sender is in the chat (as INSERT_BATCH checks) and not banned
            and sender_in_chat(id, ${message.sender_id})
            and not ${bannedNow(tx, message.sender_id)}
          returning last_seq`,
          signal,
        );
        if (!chat) throw new ChatError("forbidden", "you may not send to this chat");
        const [row] = await cancelledOnAbort(
          tx<MessageRow[]>`
          insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                                content, media_id, client_id, created_at, updated_at)
          values (${message.chat_id}, ${chat.last_seq}, ${message.sender_id},
                  ${message.sender_side}, ${message.receiver_id}, ${message.media_type},
                  ${message.content}, ${message.media_id}, ${message.client_id},
                  date_trunc('milliseconds', now()), date_trunc('milliseconds', now()))
          on conflict (chat_id, sender_id, client_id) do nothing
          returning ${messageColumns(tx)}`,
          signal,
        );
        if (!row) throw new DuplicateClientId();
        return { message: toStoredMessage(row), duplicate: false, receiver_unread: null };
      }, { signal });
    } catch (error) {
      // checked when the send began, deleted since by the sweep of unsent media
      if (isMediaGone(error)) throw unknownMedia();
      if (!(error instanceof DuplicateClientId)) throw error;
      const earlier = await selectByClientId(
        message.chat_id,
        message.sender_id,
        message.client_id!,
        writerSql,
      );
      if (!earlier) throw new ChatError("internal", "duplicate client_id without a message");
      return { message: earlier, duplicate: true, receiver_unread: null };
    }
  }

  /**
   * Waits for a write of the chat under way: a writer holds the chat's row until its batch
   * commits, and the lookup after this (a statement of its own, with a snapshot of its own) sees
   * what it stored. A wait past WRITES_UNDER_WAY_WAIT_MS is for a row held from outside (see
   * locked_chats.ts), or queued behind writers held by one: it is cut there (`statement_timeout`,
   * which bounds the whole statement where `lock_timeout` would bound each lock it queues for)
   * and the lookup goes on without it, rather than the wait outliving its caller's deadline and
   * keeping a connection of the pool until the row is let go.
   */
  async function afterWritesUnderWay(chatId: string): Promise<void> {
    try {
      await transaction(sql, async (tx) => {
        await tx`select set_config('statement_timeout', ${String(WRITES_UNDER_WAY_WAIT_MS)}, true)`;
        await tx`select 1 from chats where id = ${chatId} for share`;
      });
    } catch (error) {
      if (errorCode(error) !== QUERY_CANCELED) throw error;
    }
  }

  async function selectByClientId(chatId: string, senderId: string, clientId: string, db = sql) {
    const [row] = await db<MessageRow[]>`
      select ${messageColumns(db)} from messages where chat_id = ${chatId}
        and sender_id = ${senderId} and client_id = ${clientId}`;
    return row ? toStoredMessage(row) : null;
  }

  const store: ChatStore = {
    ...createChatQueries(sql),

    insertMessage(message: NewMessage): Promise<InsertedMessage> {
      return writer.insert(message);
    },

    async messageByClientId(chatId, senderId, clientId, options = {}) {
      if (options.afterWritesUnderWay) await afterWritesUnderWay(chatId);
      return await selectByClientId(chatId, senderId, clientId);
    },

    async history(chatId, query) {
      return historyPage(await historyRows(sql, chatId, query), query);
    },

    async historyAsked(asker, query) {
      const answer = await readAsked(sql, asker, {
        select: historyRows(sql, asker.chatId, query),
        orderBy: query.after_seq !== undefined ? sql`r.seq asc` : sql`r.seq desc`,
        present: "id",
      });
      if ("refused" in answer) return answer;
      return { read: { ...historyPage(answer.rows, query), chat_id: answer.chatId! } };
    },

    async messagesBetween(chatId, fromSeq, toSeq) {
      const rows = await sql<MessageRow[]>`
        select ${
        messageColumns(sql)
      } from messages where chat_id = ${chatId} and seq between ${fromSeq} and ${toSeq}
        order by seq asc`;
      return rows.map(toStoredMessage);
    },

    async amendedWithin(chatIds, window) {
      if (chatIds.length === 0) return [];
      // the same expression as the messages_amended index, so that it is used
      const amendedAt = sql`greatest(edited_at, deleted_at)`;
      const rows = await sql<MessageRow[]>`
        select ${messageColumns(sql)} from messages
        where (edited_at is not null or deleted_at is not null)
          and ${inRecentWindow(sql, amendedAt, window)}
          and chat_id = any(${arrayLiteral(chatIds)}::uuid[])
        order by chat_id, seq`;
      return rows.map(toStoredMessage);
    },

    async readWithin(chatIds, window, limit) {
      if (chatIds.length === 0) return [];
      const rows = await sql<Array<Omit<StoredRead, "read_at"> & { read_at: Date }>>`
        select chat_id, id as message_id, seq, read_by as reader_id, read_at from messages
        where chat_id = any(${arrayLiteral(chatIds)}::uuid[]) and read_at is not null
          and ${inRecentWindow(sql, sql`read_at`, window)}
          and read_by is not null and deleted_at is null
        order by read_at desc limit ${limit}`;
      return rows
        .map((row) => ({ ...row, read_at: row.read_at.toISOString() }))
        .sort((a, b) => a.chat_id.localeCompare(b.chat_id) || a.seq - b.seq);
    },

    async readTallies(chatIds, window) {
      // one row for the bounds when no chat has marks (chat_id null)
      const rows = await sql<ReadTallyRow[]>`
        select (extract(epoch from w.from_at) * 1000)::float8 as from_ms,
               (extract(epoch from w.to_at) * 1000)::float8 as to_ms,
               t.chat_id, t.reads, t.offsets_ms
        from (select ${recentWindowBounds(sql, window)}) w
        left join lateral (
          -- down the messages_read index; a sum of intervals costs less a row than of numbers
          select chat_id, count(*)::int as reads,
                 (extract(epoch from sum(read_at - w.from_at)) * 1000)::float8 as offsets_ms
          from messages
          where chat_id = any(${arrayLiteral(chatIds)}::uuid[]) and read_at is not null
            and ${inRecentWindow(sql, sql`read_at`, window)}
          group by chat_id
        ) t on true`;
      return {
        fromMs: rows[0]!.from_ms,
        toMs: rows[0]!.to_ms,
        chats: rows.flatMap(({ chat_id, reads, offsets_ms }) =>
          chat_id === null ? [] : [{ chat_id, reads, offsetsMs: offsets_ms }]
        ),
      };
    },

    async unread(chatId, side, limit) {
      const rows = await unreadRows(sql, chatId, limit, {
        count: sql`c.${unreadColumn(sql, side)}`,
        senderSide: sql`${otherSide(side)}`,
      });
      return unreadSnapshot(rows);
    },

    async unreadAsked(asker, limit) {
      // the side as sideOf has it: a participant is the customer, or else on the vendor side
      const customer = sql`c.user_id = ${asker.userId}`;
      const answer = await readAsked(sql, asker, {
        select: unreadRows(sql, asker.chatId, limit, {
          count: sql`case when ${customer} then c.customer_unread else c.vendor_unread end`,
          senderSide: sql`case when ${customer} then 'vendor' else 'customer' end`,
        }),
        orderBy: sql`r.seq`,
        present: "count",
      });
      if ("refused" in answer) return answer;
      return { read: { ...unreadSnapshot(answer.rows), chat_id: answer.chatId! } };
    },

    getMessage(messageId) {
      return selectMessage(sql, messageId);
    },

    markRead(chatId, messageId, readerSide, readerId) {
      return writer.read({
        chat_id: chatId,
        message_id: messageId,
        reader_side: readerSide,
        reader_id: readerId,
      });
    },

    async markReadUpTo(chatId, readerSide, seq, readerId) {
      const [result] = await sql<
        Array<{
          allowed: boolean;
          count: number;
          up_to_seq: number;
          read_at: Date;
          after: ChatAfterRead | null;
        }>
      >`
        with allowed as materialized (
          -- the reader is still in the chat and not banned, as a batch of read marks checks
          select sender_in_chat(${chatId}, ${readerId})
            and not ${bannedNow(sql, readerId)} as ok
        ), marked as materialized (
          -- locked in id order, as a batch of read marks locks them (see markReadBatch)
          select id from messages
          where chat_id = ${chatId} and sender_side = ${otherSide(readerSide)} and seq <= ${seq}
            and not is_read and deleted_at is null and (select ok from allowed)
          order by id for update
        ), updated as (
          -- by primary key whatever the statistics: a join with marked is planned as a scan of
          -- the whole table when many messages are marked
          update messages set is_read = true, read_at = date_trunc('milliseconds', now()),
            read_by = ${readerId}, updated_at = date_trunc('milliseconds', now())
          where id = any(array(select id from marked))
          returning seq
        ), counter as (
          update chats set ${unreadColumn(sql, readerSide)} =
            ${unreadColumn(sql, readerSide)} - (select count(*) from updated),
            unread_epoch = unread_epoch + 1
          where id = ${chatId} and exists (select 1 from updated)
          returning ${chatAfterRead(sql)}
        )
        select (select ok from allowed) as allowed, (select count(*) from updated)::int as count,
               (select coalesce(max(seq), 0) from updated)::int as up_to_seq,
               date_trunc('milliseconds', now()) as read_at,
               (select row_to_json(counter) from counter) as after`;
      if (result && !result.allowed) {
        throw new ChatError("forbidden", "you may not mark messages read in this chat");
      }
      if (result?.after) {
        writer.noteRead(chatId, {
          after: result.after,
          wasRead: (message) => message.sender_side !== readerSide && message.seq <= seq,
        });
      }
      return {
        count: result?.count ?? 0,
        up_to_seq: result?.up_to_seq ?? 0,
        read_at: (result?.read_at ?? new Date()).toISOString(),
      };
    },

    deleteMessage(messageId, deletedBy, options = {}) {
      return deleteMessage(sql, messageId, { deletedBy, audit: options.audit });
    },

    deleteOwnMessage(asker, messageId) {
      return deleteOwnMessage(sql, asker, messageId);
    },

    editOwnMessage(asker, messageId, content) {
      return editOwnMessage(sql, asker, messageId, content);
    },

    ...moderation,

    createMedia(media) {
      return insertMedia(sql, media);
    },

    getMedia(mediaId) {
      return selectMedia(sql, mediaId);
    },

    deleteUnsentMedia(mediaId) {
      return deleteUnsentMedia(sql, mediaId);
    },
  };
  const writer = createMessageWriter(writerSql, {
    insertOne: insertSingle,
  });
  // The writer's calls are none of `calls`: no context and no signal of their own per message
  const { insertMessage, markRead, ...reads } = store;
  return {
    ...withErrorTranslation(reads, { calls }),
    ...withErrorTranslation({ insertMessage, markRead }),
  };
}

/**
 * A history page's rows and the one after it, if any: newest first, or oldest first after
 * `after_seq`.
 */
function historyRows(sql: Sql, chatId: string, { limit, before_seq, after_seq }: HistoryQuery) {
  const before = before_seq !== undefined ? sql`and seq < ${before_seq}` : sql``;
  return after_seq !== undefined
    ? sql<MessageRow[]>`
        select ${messageColumns(sql)} from messages
        where chat_id = ${chatId} and seq > ${after_seq} ${before}
        order by seq asc limit ${limit + 1}`
    : sql<MessageRow[]>`
        select ${messageColumns(sql)} from messages where chat_id = ${chatId} ${before}
        order by seq desc limit ${limit + 1}`;
}

/** The page of historyRows' rows, in their order, oldest first. */
function historyPage(rows: MessageRow[], query: HistoryQuery): Page<StoredMessage> {
  const has_more = rows.length > query.limit;
  const page = rows.slice(0, query.limit);
  if (query.after_seq === undefined) page.reverse();
  return { items: page.map(toStoredMessage), has_more };
}

/**
 * The chat's row with the newest of a side's unread (none: one row of nulls beside the count and
 * the chat's last seq).
 */
type UnreadRow =
  & { count: number; chat_last_seq: number }
  & (MessageRow | { [column in keyof MessageRow]: null });

/**
 * A side's unread in one statement, so that the count, the messages and the chat's last seq
 * are of one moment: `count` the side's counter of the chat row `c`, `senderSide` the other
 * side's.
 */
function unreadRows(
  sql: Sql,
  chatId: string,
  limit: number,
  side: { count: PendingQuery<Row[]>; senderSide: PendingQuery<Row[]> },
) {
  return sql<UnreadRow[]>`
    select ${side.count} as count, c.last_seq as chat_last_seq, ${messageColumns(sql, "m")}
    from chats c
    left join lateral (
      select ${messageColumns(sql)} from messages
      where chat_id = c.id and sender_side = ${side.senderSide} and not is_read
        and deleted_at is null
      order by seq desc limit ${limit}
    ) m on true
    where c.id = ${chatId}`;
}

function unreadSnapshot(rows: UnreadRow[]): StoredUnread {
  const messages = rows.flatMap((row) => row.id === null ? [] : [toStoredMessage(row)]);
  return {
    count: rows[0]?.count ?? 0,
    messages: messages.sort((a, b) => a.seq - b.seq),
    last_seq: rows[0]?.chat_last_seq ?? 0,
  };
}

/** A chat's read marks of a window (chat_id null when none has any), with the window's bounds. */
interface ReadTallyRow {
  from_ms: number;
  to_ms: number;
  chat_id: string | null;
  reads: number;
  offsets_ms: number;
}

/** The chat's unread counter of a side, as SQL text (a constant: no helper regexes). */
function unreadColumn(sql: Sql, side: Side) {
  return sql.unsafe(side === "customer" ? "customer_unread" : "vendor_unread");
}

/** A message insert refused because its media row is gone (the foreign key to `media`). */
function isMediaGone(error: unknown): boolean {
  return errorCode(error) === "23503" &&
    (error as { constraint_name?: unknown }).constraint_name === "messages_media_id_fkey";
}
