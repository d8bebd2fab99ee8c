import type { Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import type {
  ChatStore,
  InsertedMessage,
  ModerationRecord,
  NewMessage,
  Page,
  StoredRead,
} from "../chat/ports.ts";
import {
  type ChatSummary,
  type Membership,
  otherSide,
  type Side,
  sideOf,
  type StoredMessage,
  toClientMessage,
} from "../chat/types.ts";
import { withErrorTranslation } from "./errors.ts";
import { insertMedia, selectMedia } from "./media_rows.ts";
import { createMessageWriter } from "./message_writer.ts";
import { type ChatAfterRead, chatAfterRead } from "./read_batch.ts";
import { withWholeResults } from "./whole_results.ts";
import {
  type BanRow,
  type ChatRow,
  type MemberRow,
  messageColumns,
  type MessageRow,
  type ModerationRow,
  toBan,
  toChat,
  toMember,
  toModerationAction,
  toStoredMessage,
} from "./rows.ts";
import { transaction } from "./transactions.ts";
import { arrayLiteral } from "./array_literal.ts";

/** Thrown inside a transaction to roll it back when a `client_id` was seen before. */
class DuplicateClientId extends Error {}

type ChatListRow = ChatRow & MessageColumns & { unread: number };
/** The last message, joined to a chat row with an `m_` prefix. */
type MessageColumns = { [K in keyof MessageRow as `m_${K}`]: MessageRow[K] | null };

/**
 * The chat store over postgres.js; every query is a tagged template (parameterised).
 * `writerSql` is for the message writer: main.ts gives it connections of its own, one per lane
 * (`WRITER_LANES`). From a shared pool each batch goes to the connection idle longest, a
 * different backend each time; with two kept busy, PostgreSQL took 22 – 33 % less CPU per
 * message (BENCHMARKS.md, "Seventh session").
 */
export function createPostgresStore(pool: Sql, writerPool: Sql = pool): ChatStore {
  const sql = withWholeResults(pool);
  const writerSql = writerPool === pool ? sql : withWholeResults(writerPool);
  async function sidesOf(userId: string, rows: Array<ChatRow & { is_member: boolean }>) {
    const memberships: Membership[] = [];
    for (const row of rows) {
      const side = sideOf(row, userId, row.is_member);
      if (side) memberships.push({ chat: toChat(row), side });
    }
    return await Promise.resolve(memberships);
  }

  async function selectMessage(db: Sql, messageId: string) {
    const [row] = await db<MessageRow[]>`select ${
      messageColumns(db)
    } from messages where id = ${messageId}`;
    return row ? toStoredMessage(row) : null;
  }

  async function insertModeration(db: Sql, action: ModerationRecord) {
    const [row] = await db<ModerationRow[]>`
      insert into moderation_actions (action, moderator_id, target_user_id,
                                      target_message_id, reason)
      values (${action.action}, ${action.moderator_id}, ${action.target_user_id},
              ${action.target_message_id}, ${action.reason})
      returning *`;
    return toModerationAction(row!);
  }

  /**
   * `change` alone, or with its audit row in one transaction: the row is written when `change`
   * found its target (a truthy result), and neither stays when either fails.
   */
  async function audited<T>(
    audit: ModerationRecord | undefined,
    change: (db: Sql) => Promise<T>,
  ): Promise<T> {
    if (!audit) return await change(sql);
    return await transaction(sql, async (tx) => {
      const result = await change(tx);
      if (result) await insertModeration(tx, audit);
      return result;
    });
  }

  /** One message in its own transaction: the careful path when a batch meets a conflict. */
  async function insertSingle(message: NewMessage, signal: AbortSignal): Promise<InsertedMessage> {
    try {
      return await transaction(sql, async (tx) => {
        // The chat row lock orders writers of one chat: seq is gapless, chats never wait
        // on each other.
        const [chat] = await tx<Array<{ last_seq: number }>>`
          update chats set
            last_seq = last_seq + 1,
            updated_at = date_trunc('milliseconds', now()),
            customer_unread = customer_unread + ${message.sender_side === "vendor" ? 1 : 0},
            vendor_unread = vendor_unread + ${message.sender_side === "customer" ? 1 : 0}
          where id = ${message.chat_id}
            and not exists (select 1 from bans b where b.user_id = ${message.sender_id}
                            and (b.expires_at is null or b.expires_at > now()))
          returning last_seq`;
        if (!chat) throw new ChatError("forbidden", "you may not send to this chat");
        const [row] = await tx<MessageRow[]>`
          insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                                content, media_id, client_id, created_at, updated_at)
          values (${message.chat_id}, ${chat.last_seq}, ${message.sender_id},
                  ${message.sender_side}, ${message.receiver_id}, ${message.media_type},
                  ${message.content}, ${message.media_id}, ${message.client_id},
                  date_trunc('milliseconds', now()), date_trunc('milliseconds', now()))
          on conflict (chat_id, sender_id, client_id) do nothing
          returning ${messageColumns(tx)}`;
        if (!row) throw new DuplicateClientId();
        return { message: toStoredMessage(row), duplicate: false, receiver_unread: null };
      }, { signal });
    } catch (error) {
      if (!(error instanceof DuplicateClientId)) throw error;
      const [row] = await sql<MessageRow[]>`
        select ${messageColumns(sql)} from messages where chat_id = ${message.chat_id}
          and sender_id = ${message.sender_id} and client_id = ${message.client_id}`;
      if (!row) throw new ChatError("internal", "duplicate client_id without a message");
      return { message: toStoredMessage(row), duplicate: true, receiver_unread: null };
    }
  }

  const store: ChatStore = {
    async createChat(userId, vendorId) {
      const inserted = await sql<ChatRow[]>`
        insert into chats (user_id, vendor_id) values (${userId}, ${vendorId})
        on conflict (user_id, vendor_id) do nothing
        returning id, user_id, vendor_id, last_seq, created_at, updated_at`;
      if (inserted[0]) return { chat: toChat(inserted[0]), created: true };
      const [existing] = await sql<ChatRow[]>`
        select id, user_id, vendor_id, last_seq, created_at, updated_at
        from chats where user_id = ${userId} and vendor_id = ${vendorId}`;
      if (!existing) throw new ChatError("internal", "chat vanished after a conflict");
      return { chat: toChat(existing), created: false };
    },

    async getChat(chatId) {
      const [row] = await sql<ChatRow[]>`
        select id, user_id, vendor_id, last_seq, created_at, updated_at
        from chats where id = ${chatId}`;
      return row ? toChat(row) : null;
    },

    async getChats(chatIds) {
      if (chatIds.length === 0) return [];
      const rows = await sql<ChatRow[]>`
        select id, user_id, vendor_id, last_seq, created_at, updated_at
        from chats where id = any(${arrayLiteral(chatIds)}::uuid[])`;
      return rows.map(toChat);
    },

    async membership(chatId, userId) {
      const rows = await sql<Array<ChatRow & { is_member: boolean }>>`
        select c.id, c.user_id, c.vendor_id, c.last_seq, c.created_at, c.updated_at,
               exists (select 1 from vendor_members vm
                       where vm.vendor_id = c.vendor_id and vm.user_id = ${userId}) as is_member
        from chats c where c.id = ${chatId}`;
      const [membership] = await sidesOf(userId, rows);
      return membership ?? null;
    },

    async chatsOf(userId) {
      const rows = await sql<Array<ChatRow & { is_member: boolean }>>`
        select c.id, c.user_id, c.vendor_id, c.last_seq, c.created_at, c.updated_at,
               c.vendor_id <> ${userId} and c.user_id <> ${userId} as is_member
        from chats c
        where c.user_id = ${userId} or c.vendor_id = ${userId}
           or c.vendor_id in (select vendor_id from vendor_members where user_id = ${userId})`;
      return await sidesOf(userId, rows);
    },

    async vendorsOf(userId) {
      const rows = await sql<Array<{ vendor_id: string }>>`
        select vendor_id from vendor_members where user_id = ${userId}`;
      return rows.map((row) => row.vendor_id);
    },

    async isVendorMember(vendorId, userId) {
      const rows = await sql`
        select 1 from vendor_members where vendor_id = ${vendorId} and user_id = ${userId}`;
      return rows.length > 0;
    },

    async listChatsOf(userId, { before, limit }) {
      // Cursors compare at the millisecond precision clients see; imported rows may carry
      // microseconds, which `before` and `at` would otherwise skip.
      const activity = sql`date_trunc('milliseconds', c.updated_at)`;
      const page = (cursor: { before?: string; at?: string }, take: number) =>
        sql<ChatListRow[]>`
        with mine as (
          select id from chats where user_id = ${userId}
          union select id from chats where vendor_id = ${userId}
          union select c.id from chats c
            join vendor_members vm on vm.vendor_id = c.vendor_id and vm.user_id = ${userId}
        )
        select c.id, c.user_id, c.vendor_id, c.last_seq, c.created_at, c.updated_at,
               case when c.user_id = ${userId} then c.customer_unread
                    else c.vendor_unread end as unread,
               m.id as m_id, m.chat_id as m_chat_id, m.seq as m_seq, m.sender_id as m_sender_id,
               m.sender_side as m_sender_side, m.receiver_id as m_receiver_id,
               m.media_type as m_media_type, m.content as m_content, m.media_id as m_media_id,
               m.client_id as m_client_id, m.is_read as m_is_read, m.read_at as m_read_at,
               m.edited_at as m_edited_at, m.deleted_at as m_deleted_at,
               m.deleted_by as m_deleted_by, m.created_at as m_created_at,
               m.updated_at as m_updated_at
        from chats c
        left join messages m on m.chat_id = c.id and m.seq = c.last_seq
        where c.id in (select id from mine)
          ${cursor.before ? sql`and ${activity} < ${cursor.before}` : sql``}
          ${cursor.at ? sql`and ${activity} = ${cursor.at}` : sql``}
        order by c.updated_at desc, c.id desc
        limit ${take}`;

      const rows = await page(before === undefined ? {} : { before }, limit + 1);
      let has_more = rows.length > limit;
      let items = rows.slice(0, limit);
      // A page never ends inside a run of equal updated_at, so `before` never skips a chat.
      const last = items.at(-1);
      const next = rows[limit];
      if (last && next && last.updated_at.getTime() === next.updated_at.getTime()) {
        const at = last.updated_at.toISOString();
        const tied = await page({ at }, 10_000);
        items = [...items.filter((row) => row.updated_at.getTime() !== last.updated_at.getTime())];
        items.push(...tied);
        const [older] = await page({ before: at }, 1);
        has_more = older !== undefined;
      }
      return { items: items.map(toSummary), has_more };
    },

    async lastSeqs(chatIds) {
      if (chatIds.length === 0) return new Map();
      const rows = await sql<Array<{ id: string; last_seq: number }>>`
        select id, last_seq from chats where id = any(${arrayLiteral(chatIds)}::uuid[])`;
      return new Map(rows.map((row) => [row.id, row.last_seq]));
    },

    insertMessage(message: NewMessage): Promise<InsertedMessage> {
      return writer.insert(message);
    },

    async history(chatId, { limit, before_seq, after_seq }) {
      const rows = after_seq !== undefined
        ? await sql<MessageRow[]>`
            select ${
          messageColumns(sql)
        } from messages where chat_id = ${chatId} and seq > ${after_seq}
              ${before_seq !== undefined ? sql`and seq < ${before_seq}` : sql``}
            order by seq asc limit ${limit + 1}`
        : await sql<MessageRow[]>`
            select ${messageColumns(sql)} from messages where chat_id = ${chatId}
              ${before_seq !== undefined ? sql`and seq < ${before_seq}` : sql``}
            order by seq desc limit ${limit + 1}`;
      const has_more = rows.length > limit;
      const page = rows.slice(0, limit);
      if (after_seq === undefined) page.reverse();
      return { items: page.map(toStoredMessage), has_more } satisfies Page<StoredMessage>;
    },

    async messagesBetween(chatId, fromSeq, toSeq) {
      const rows = await sql<MessageRow[]>`
        select ${
        messageColumns(sql)
      } from messages where chat_id = ${chatId} and seq between ${fromSeq} and ${toSeq}
        order by seq asc`;
      return rows.map(toStoredMessage);
    },

    async amendedWithin(chatIds, { withinMs, exceptLastMs = 0 }) {
      if (chatIds.length === 0) return [];
      // the same expression as the messages_amended index, so that it is used
      const rows = await sql<MessageRow[]>`
        select ${messageColumns(sql)} from messages
        where (edited_at is not null or deleted_at is not null)
          and greatest(edited_at, deleted_at) > now() - make_interval(secs => ${withinMs / 1000})
          and greatest(edited_at, deleted_at) <= now() - make_interval(secs => ${
        exceptLastMs / 1000
      })
          and chat_id = any(${arrayLiteral(chatIds)}::uuid[])
        order by chat_id, seq`;
      return rows.map(toStoredMessage);
    },

    async readWithin(chatIds, { withinMs, exceptLastMs = 0 }, limit) {
      if (chatIds.length === 0) return [];
      const rows = await sql<Array<Omit<StoredRead, "read_at"> & { read_at: Date }>>`
        select chat_id, id as message_id, seq, read_by as reader_id, read_at from messages
        where chat_id = any(${arrayLiteral(chatIds)}::uuid[]) and read_at is not null
          and read_at > now() - make_interval(secs => ${withinMs / 1000})
          and read_at <= now() - make_interval(secs => ${exceptLastMs / 1000})
          and read_by is not null and deleted_at is null
        order by read_at desc limit ${limit}`;
      return rows
        .map((row) => ({ ...row, read_at: row.read_at.toISOString() }))
        .sort((a, b) => a.chat_id.localeCompare(b.chat_id) || a.seq - b.seq);
    },

    async unread(chatId, side, limit) {
      // one statement, so that the count and the messages are of one moment
      const rows = await sql<
        Array<{ count: number } & (MessageRow | { [column in keyof MessageRow]: null })>
      >`
        select c.${unreadColumn(sql, side)} as count, ${messageColumns(sql, "m")}
        from chats c
        left join lateral (
          select ${messageColumns(sql)} from messages
          where chat_id = c.id and sender_side = ${otherSide(side)} and not is_read
            and deleted_at is null
          order by seq desc limit ${limit}
        ) m on true
        where c.id = ${chatId}`;
      const messages = rows.flatMap((row) => row.id === null ? [] : [toStoredMessage(row)]);
      return { count: rows[0]?.count ?? 0, messages: messages.sort((a, b) => a.seq - b.seq) };
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
        Array<{ count: number; read_at: Date; after: ChatAfterRead | null }>
      >`
        with marked as materialized (
          -- locked in id order, as a batch of read marks locks them (see markReadBatch)
          select id from messages
          where chat_id = ${chatId} and sender_side = ${otherSide(readerSide)} and seq <= ${seq}
            and not is_read and deleted_at is null
          order by id for update
        ), updated as (
          -- by primary key whatever the statistics: a join with marked is planned as a scan of
          -- the whole table when many messages are marked
          update messages set is_read = true, read_at = date_trunc('milliseconds', now()),
            read_by = ${readerId}, updated_at = date_trunc('milliseconds', now())
          where id = any(array(select id from marked))
          returning 1
        ), counter as (
          update chats set ${unreadColumn(sql, readerSide)} =
            ${unreadColumn(sql, readerSide)} - (select count(*) from updated),
            unread_epoch = unread_epoch + 1
          where id = ${chatId} and exists (select 1 from updated)
          returning ${chatAfterRead(sql)}
        )
        select (select count(*) from updated)::int as count, date_trunc('milliseconds', now()) as read_at,
               (select row_to_json(counter) from counter) as after`;
      if (result?.after) {
        writer.noteRead(chatId, {
          after: result.after,
          wasRead: (message) => message.sender_side !== readerSide && message.seq <= seq,
        });
      }
      return { count: result?.count ?? 0, read_at: (result?.read_at ?? new Date()).toISOString() };
    },

    deleteMessage(messageId, deletedBy, options = {}) {
      return audited(options.audit, async (db) => {
        const [row] = await db<MessageRow[]>`
          with updated as (
            update messages set deleted_at = date_trunc('milliseconds', now()), deleted_by = ${deletedBy},
                                updated_at = date_trunc('milliseconds', now())
            where id = ${messageId} and deleted_at is null
            returning ${messageColumns(db)}
          ), counter as (
            update chats set
              customer_unread = customer_unread - (select count(*) from updated
                                                   where sender_side = 'vendor' and not is_read),
              vendor_unread = vendor_unread - (select count(*) from updated
                                               where sender_side = 'customer' and not is_read),
              unread_epoch = unread_epoch + 1
            where id = (select chat_id from updated)
          )
          select * from updated`;
        if (row) return { message: toStoredMessage(row), changed: true };
        // on the same connection: another one, inside a transaction, could wait on a full pool
        const current = await selectMessage(db, messageId);
        return current ? { message: current, changed: false } : null;
      });
    },

    async editMessage(messageId, content) {
      const [row] = await sql<MessageRow[]>`
        with updated as (
          update messages set content = ${content}, edited_at = date_trunc('milliseconds', now()),
                              updated_at = date_trunc('milliseconds', now())
          where id = ${messageId} and deleted_at is null and media_type = 'text'
          returning ${messageColumns(sql)}
        ), bump as (
          update chats set unread_epoch = unread_epoch + 1
          where id = (select chat_id from updated)
        )
        select * from updated`;
      return row ? toStoredMessage(row) : null;
    },

    async addVendorMember(vendorId, userId, role) {
      const [row] = await sql<MemberRow[]>`
        insert into vendor_members (vendor_id, user_id, role) values (${vendorId}, ${userId}, ${role})
        on conflict (vendor_id, user_id) do update set role = excluded.role
        returning vendor_id, user_id, role, created_at`;
      return toMember(row!);
    },

    async removeVendorMember(vendorId, userId) {
      const rows = await sql`
        delete from vendor_members where vendor_id = ${vendorId} and user_id = ${userId}
        returning 1`;
      return rows.length > 0;
    },

    async listVendorMembers(vendorId) {
      const rows = await sql<MemberRow[]>`
        select vendor_id, user_id, role, created_at from vendor_members
        where vendor_id = ${vendorId} order by created_at, user_id`;
      return rows.map(toMember);
    },

    async activeBan(userId) {
      const [row] = await sql<BanRow[]>`
        select * from bans where user_id = ${userId}
          and (expires_at is null or expires_at > now())`;
      return row ? toBan(row) : null;
    },

    async operatorDisconnectedWithin(userId, ms) {
      const rows = await sql`
        select 1 from moderation_actions
        where target_user_id = ${userId} and action = 'disconnect_user'
          and created_at > now() - make_interval(secs => ${ms / 1000})
        limit 1`;
      return rows.length > 0;
    },

    ban({ user_id, moderator_id, reason, expires_at }, options = {}) {
      return audited(options.audit, async (db) => {
        const [row] = await db<BanRow[]>`
          insert into bans (user_id, moderator_id, reason, expires_at)
          values (${user_id}, ${moderator_id}, ${reason}, ${expires_at})
          on conflict (user_id) do update set moderator_id = excluded.moderator_id,
            reason = excluded.reason, expires_at = excluded.expires_at, created_at = now()
          returning *`;
        return toBan(row!);
      });
    },

    unban(userId, options = {}) {
      return audited(options.audit, async (db) => {
        // a ban that has run out goes too, but there was nothing to lift
        const [row] = await db<Array<{ in_force: boolean }>>`
          delete from bans where user_id = ${userId}
          returning (expires_at is null or expires_at > now()) as in_force`;
        return row?.in_force === true;
      });
    },

    recordModeration(action) {
      return insertModeration(sql, action);
    },

    createMedia(media) {
      return insertMedia(sql, media);
    },

    getMedia(mediaId) {
      return selectMedia(sql, mediaId);
    },

    async check(signal) {
      const query = sql`select 1`.execute();
      const aborted = new Promise<never>((_, reject) => {
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
      try {
        await Promise.race([query, aborted]);
        return true;
      } catch {
        query.cancel();
        return false;
      }
    },
  };
  const writer = createMessageWriter(writerSql, {
    insertOne: insertSingle,
  });
  return withErrorTranslation(store);
}

/** The chat's unread counter of a side, as SQL text (a constant: no helper regexes). */
function unreadColumn(sql: Sql, side: Side) {
  return sql.unsafe(side === "customer" ? "customer_unread" : "vendor_unread");
}

function toSummary(row: ChatListRow): ChatSummary {
  const last = row.m_id === null ? null : toStoredMessage(unprefix(row));
  return {
    chat_id: row.id,
    user_id: row.user_id,
    vendor_id: row.vendor_id,
    last_message: last ? toClientMessage(last) : null,
    unread_count: row.unread,
    updated_at: row.updated_at.toISOString(),
  };
}

function unprefix(row: ChatListRow): MessageRow {
  const message: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(row)) {
    if (key.startsWith("m_")) message[key.slice(2)] = value;
  }
  return message as unknown as MessageRow;
}
