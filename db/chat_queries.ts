import type { PendingQuery, Row, Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { ChatListQuery, ChatStore, Page } from "../chat/ports.ts";
import { type ChatSummary, type Membership, sideOf, toClientMessage } from "../chat/types.ts";
import { arrayLiteral } from "./array_literal.ts";
import { readAsked } from "./asked_reads.ts";
import { inRecentWindow } from "./recent_window.ts";
import { type ChatRow, type MessageRow, toChat, toStoredMessage } from "./rows.ts";

type ChatListRow = ChatRow & MessageColumns & { unread: number };
/** The last message, joined to a chat row with an `m_` prefix. */
type MessageColumns = { [K in keyof MessageRow as `m_${K}`]: MessageRow[K] | null };

/** The store's queries of chats and who is in them. */
export type ChatQueries = Pick<
  ChatStore,
  | "createChat"
  | "getChat"
  | "getChats"
  | "chatsCreatedWithin"
  | "membership"
  | "memberships"
  | "chatsOf"
  | "vendorsOf"
  | "isVendorMember"
  | "listChatsOf"
  | "listChatsAsked"
  | "lastSeqs"
>;

/** Chats, their participants and the chat list over postgres.js, for createPostgresStore. */
export function createChatQueries(sql: Sql): ChatQueries {
  return {
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

    async chatsCreatedWithin(window) {
      // down chats_by_created, backwards: only the window's rows are read
      const rows = await sql<ChatRow[]>`
        select id, user_id, vendor_id, last_seq, created_at, updated_at from chats
        where ${inRecentWindow(sql, sql`created_at`, window)}
        order by created_at, id`;
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

    async memberships(chatIds, userId) {
      if (chatIds.length === 0) return [];
      const rows = await sql<Array<ChatRow & { is_member: boolean }>>`
        select c.id, c.user_id, c.vendor_id, c.last_seq, c.created_at, c.updated_at,
               exists (select 1 from vendor_members vm
                       where vm.vendor_id = c.vendor_id and vm.user_id = ${userId}) as is_member
        from chats c where c.id = any(${arrayLiteral(chatIds)}::uuid[])`;
      return await sidesOf(userId, rows);
    },

    async chatsOf(userId) {
      const columns = sql`id, user_id, vendor_id, last_seq, created_at, updated_at`;
      const rows = await sql<Array<ChatRow & { is_member: boolean }>>`
        select c.id, c.user_id, c.vendor_id, c.last_seq, c.created_at, c.updated_at,
               c.vendor_id <> ${userId} and c.user_id <> ${userId} as is_member
        from (${chatsOfParticipant(sql, userId, columns)}) c`;
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

    async listChatsOf(userId, query) {
      const list = chatList(sql, userId, query);
      return await list.from(await list.first);
    },

    async listChatsAsked(userId, query) {
      const list = chatList(sql, userId, query);
      const answer = await readAsked(sql, { userId, chatId: null }, {
        select: list.first,
        orderBy: sql`r.updated_at desc, r.id desc`,
        present: "id",
      });
      if ("refused" in answer) return answer;
      return { read: await list.from(answer.rows) };
    },

    async lastSeqs(chatIds) {
      if (chatIds.length === 0) return new Map();
      const rows = await sql<Array<{ id: string; last_seq: number }>>`
        select id, last_seq from chats where id = any(${arrayLiteral(chatIds)}::uuid[])`;
      return new Map(rows.map((row) => [row.id, row.last_seq]));
    },
  };
}

/**
 * A page of the user's chat list: `first`, the statement of its rows and the one after them
 * (not sent yet: it may be asked as a part of another), and `from`, the page those rows make.
 */
function chatList(sql: Sql, userId: string, { before, limit }: ChatListQuery) {
  // Cursors compare at the millisecond precision clients see; imported rows may carry
  // microseconds, which `before` and `at` would otherwise skip.
  const activity = sql`date_trunc('milliseconds', c.updated_at)`;
  const columns = sql`
    id, user_id, vendor_id, last_seq, customer_unread, vendor_unread, created_at, updated_at`;
  // Only the page's chats look up their last message: a join of the ids with chats was
  // planned as a scan of the whole table for a user of a few thousand chats, and every
  // chat's last message was read before the page was cut.
  // `take` null: every row (a run of one updated_at, which no cursor can split)
  const page = (cursor: { before?: string; at?: string }, take: number | null) =>
    sql<ChatListRow[]>`
    with mine as (${chatsOfParticipant(sql, userId, columns)})
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
    from (
      select * from mine c
      where true
        ${cursor.before ? sql`and ${activity} < ${cursor.before}` : sql``}
        ${cursor.at ? sql`and ${activity} = ${cursor.at}` : sql``}
      order by c.updated_at desc, c.id desc
      ${take === null ? sql`` : sql`limit ${take}`}
    ) c
    left join messages m on m.chat_id = c.id and m.seq = c.last_seq
    order by c.updated_at desc, c.id desc`;

  async function from(rows: ChatListRow[]): Promise<Page<ChatSummary>> {
    let has_more = rows.length > limit;
    let items = rows.slice(0, limit);
    // A page never ends inside a run of equal updated_at, so `before` never skips a chat: the
    // whole run is on it, however long (a bulk import's rows share one now()); a run cut short
    // would leave the rest of it out of every page.
    const last = items.at(-1);
    const next = rows[limit];
    if (last && next && last.updated_at.getTime() === next.updated_at.getTime()) {
      const at = last.updated_at.toISOString();
      const tied = await page({ at }, null);
      items = [...items.filter((row) => row.updated_at.getTime() !== last.updated_at.getTime())];
      items.push(...tied);
      const [older] = await page({ before: at }, 1);
      has_more = older !== undefined;
    }
    return { items: items.map(toSummary), has_more };
  }

  return { first: page(before === undefined ? {} : { before }, limit + 1), from };
}

/**
 * The `columns` of every chat of a user: as its customer, as its vendor, or as a member of its
 * vendor. Each source reads its chats by participant; one condition with `or` over the three
 * (the member's vendors a subquery) can be served by no index, and read every chat.
 */
function chatsOfParticipant(
  sql: Sql,
  userId: string,
  columns: PendingQuery<Row[]>,
): PendingQuery<Row[]> {
  return sql`
    select ${columns} from chats where user_id = ${userId}
    union select ${columns} from chats where vendor_id = ${userId}
    union select ${columns} from chats
      where vendor_id in (select vendor_id from vendor_members where user_id = ${userId})`;
}

async function sidesOf(userId: string, rows: Array<ChatRow & { is_member: boolean }>) {
  const memberships: Membership[] = [];
  for (const row of rows) {
    const side = sideOf(row, userId, row.is_member);
    if (side) memberships.push({ chat: toChat(row), side });
  }
  return await Promise.resolve(memberships);
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
