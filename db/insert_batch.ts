import type { Sql } from "postgres";
import type { NewMessage } from "../chat/ports.ts";
import type { StoredMessage } from "../chat/types.ts";
import { iso, mediaUrl, messageColumns, type MessageRow } from "./rows.ts";
import { arrayLiteral } from "./array_literal.ts";

/** What the database assigns a message as it is written; the rest is as the writer gave it. */
type Assigned = "id" | "seq" | "created_at";

/** A row of insertMessageBatch, by `ord` (1-based position in the batch's messages). */
export type BatchRow = WrittenRow | DuplicateRow;

/**
 * A message written now: what the database assigned it, and its chat as the statement left it:
 * seq before the batch (`base`), unread_epoch and the unread counters. The writer has the rest
 * from its input: reading back a dozen strings per message (most of them the same for every
 * message of a chat) would be parsing and memory for nothing, and a row of twenty columns or more
 * is a dictionary-mode object to postgres.js, 1.4 kB instead of 0.2.
 */
export type WrittenRow = Pick<MessageRow, Assigned> & {
  ord: number;
  duplicate: false;
  base: number;
  epoch: number;
  customer_unread: number;
  vendor_unread: number;
};

/** A message whose client_id wrote one before: that one's id, seq and time (readMessageRows). */
export type DuplicateRow = Pick<MessageRow, Assigned> & {
  ord: number;
  duplicate: true;
  base: null;
  epoch: null;
  customer_unread: null;
  vendor_unread: null;
};

/**
 * Writes a batch of messages in one statement (the writer's group commit). Per chat, seq is
 * taken in the batch's order under the chat's row lock, and the chat's counters rise; a
 * client_id the sender used before in the chat writes nothing and comes back as the id of the
 * earlier message (`duplicate`); the message, new or a retry, of a banned sender or of one who
 * is not in the chat (its customer, its vendor or a member of its vendor) is not written and has
 * no row (as insertSingle refuses it).
 *
 * The statement's text is a constant (INSERT_BATCH): built from a template at every batch, it
 * made a query object for each column list and a fresh 3 kB string to look the prepared
 * statement up by, work and garbage on the path of every message.
 */
export function insertMessageBatch(sql: Pick<Sql, "unsafe">, messages: readonly NewMessage[]) {
  const column = (key: keyof NewMessage) =>
    arrayLiteral(messages.map((message) => message[key] as string | null));
  return sql.unsafe<BatchRow[]>(INSERT_BATCH, [
    column("chat_id"),
    column("sender_id"),
    column("sender_side"),
    column("receiver_id"),
    column("media_type"),
    column("content"),
    column("media_id"),
    column("client_id"),
  ], { prepare: true });
}

/**
 * PostgreSQL keeps one plan for this prepared statement, made from the statistics of the first
 * executions: on a young database the messages table looks tiny then, and a join with it is
 * planned as a scan of the whole table, which grows with every message until autovacuum next
 * analyzes it (25,000 rows: 11 ms a batch). A lateral lookup with `limit 1` is planned per
 * message against the unique index whatever the statistics say.
 */
const INSERT_BATCH = `
  with input as (
    select * from unnest(
      $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::text[]
    ) with ordinality as t(chat_id, sender_id, sender_side, receiver_id, media_type, content,
                           media_id, client_id, ord)
  ), allowed as (
    -- a message has no row, a retry of one stored before included, when its sender is banned
    -- or not in its chat (checked here, not only by the edge's cached membership, which learns
    -- of a removal later; sender_in_chat: db/migrations/0023_sender_in_chat.sql)
    select * from input i
    where sender_in_chat(i.chat_id, i.sender_id)
      and not exists (select 1 from bans b where b.user_id = i.sender_id
                      and (b.expires_at is null or b.expires_at > now()))
  ), existing as (
    -- a lookup per message, never a scan: see the note above
    select i.ord, m.* from allowed i cross join lateral (
      select id, seq, created_at from messages
      where chat_id = i.chat_id and sender_id = i.sender_id and client_id = i.client_id
      limit 1
    ) m
  ), fresh as (
    select i.* from allowed i
    where not exists (select 1 from existing e where e.ord = i.ord)
  ), counts as (
    select chat_id, count(*)::int as n,
           count(*) filter (where sender_side = 'vendor')::int as to_customer,
           count(*) filter (where sender_side = 'customer')::int as to_vendor
    from fresh group by chat_id
  ), bumped as (
    update chats c set
      last_seq = c.last_seq + k.n,
      -- never back: a batch that waited for this row's lock began before the one that held it
      updated_at = greatest(c.updated_at, date_trunc('milliseconds', now())),
      customer_unread = c.customer_unread + k.to_customer,
      vendor_unread = c.vendor_unread + k.to_vendor
    from counts k where c.id = k.chat_id
    returning c.id, c.last_seq - k.n as base, c.unread_epoch as epoch,
              c.customer_unread, c.vendor_unread
  ), numbered as (
    select f.*, b.base, b.epoch, b.customer_unread, b.vendor_unread,
           (b.base + row_number() over (partition by f.chat_id order by f.ord))::int as seq
    from fresh f join bumped b on b.id = f.chat_id
  ), inserted as (
    insert into messages (chat_id, seq, sender_id, sender_side, receiver_id, media_type,
                          content, media_id, client_id, created_at, updated_at)
    select chat_id, seq, sender_id, sender_side, receiver_id, media_type, content, media_id,
           client_id, date_trunc('milliseconds', now()), date_trunc('milliseconds', now())
    from numbered order by ord
    returning id, chat_id, seq, created_at
  )
  select n.ord::int as ord, false as duplicate, n.base, n.epoch, n.customer_unread,
         n.vendor_unread, m.id, m.seq, m.created_at
  from numbered n join inserted m on m.chat_id = n.chat_id and m.seq = n.seq
  union all
  select e.ord::int, true, null, null, null, null, e.id, e.seq, e.created_at
  from existing e`;

/** The rows of messages by id: the earlier messages of a batch's duplicates. */
export function readMessageRows(sql: Sql, ids: readonly string[]) {
  return sql<MessageRow[]>`
    select ${messageColumns(sql)} from messages where id = any(${arrayLiteral(ids)}::uuid[])`;
}

/**
 * A message written now, from the input it was written from and what the database assigned (as
 * the statement above writes it).
 */
export function batchMessage(row: WrittenRow, input: NewMessage): StoredMessage {
  const createdAt = iso(row.created_at);
  return {
    id: row.id,
    chat_id: input.chat_id,
    seq: row.seq,
    sender_id: asStored(input.sender_id),
    sender_side: input.sender_side,
    receiver_id: asStored(input.receiver_id),
    media_type: input.media_type,
    content: input.content === null ? null : asStored(input.content),
    media_id: input.media_id,
    media_url: input.media_id ? mediaUrl(input.media_id) : null,
    client_id: input.client_id === null ? null : asStored(input.client_id),
    is_read: false,
    read_at: null,
    edited_at: null,
    deleted: false,
    deleted_at: null,
    deleted_by: null,
    created_at: createdAt,
    updated_at: createdAt,
  };
}

/**
 * Text as the database holds it once written: the UTF-8 encoding of a parameter turns a lone
 * surrogate (which a JSON escape can carry) into U+FFFD, as `toWellFormed` does. One-byte
 * strings, which cannot hold one, come back as they are, without a copy.
 */
function asStored(text: string): string {
  return text.toWellFormed();
}
