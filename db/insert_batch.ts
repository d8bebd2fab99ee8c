import type { Sql } from "postgres";
import type { NewMessage } from "../chat/ports.ts";
import { messageColumns, type MessageRow } from "./rows.ts";

/** A row of insertMessageBatch: a message written now, or the one its client_id wrote before. */
export type BatchRow = MessageRow & {
  ord: number;
  duplicate: boolean;
  base: number | null;
  epoch: number | null;
  customer_unread: number | null;
  vendor_unread: number | null;
};

/**
 * Writes a batch of messages in one statement (the writer's group commit). Per chat, seq is
 * taken in the batch's order under the chat's row lock, and the chat's counters rise; a
 * client_id the sender used before in the chat writes nothing and comes back as the earlier
 * message (`duplicate`); a banned sender's message is not written and has no row. Rows carry
 * `ord` (1-based position in `messages`) and, for new ones, the chat as the statement left
 * it: seq before the batch (`base`), unread_epoch and the unread counters.
 *
 * PostgreSQL keeps one plan for this prepared statement, made from the statistics of the first
 * executions: on a young database the messages table looks tiny then, and a join with it is
 * planned as a scan of the whole table, which grows with every message until autovacuum next
 * analyzes it (25,000 rows: 11 ms a batch). A lateral lookup with `limit 1` is planned per
 * message against the unique index whatever the statistics say.
 */
export function insertMessageBatch(sql: Sql, messages: readonly NewMessage[]) {
  const column = (key: keyof NewMessage) => messages.map((message) => message[key]) as string[];
  return sql<BatchRow[]>`
    with input as (
      select * from unnest(
        ${column("chat_id")}::uuid[], ${column("sender_id")}::text[],
        ${column("sender_side")}::text[], ${column("receiver_id")}::text[],
        ${column("media_type")}::text[], ${column("content")}::text[],
        ${column("media_id")}::uuid[], ${column("client_id")}::text[]
      ) with ordinality as t(chat_id, sender_id, sender_side, receiver_id, media_type, content,
                             media_id, client_id, ord)
    ), existing as (
      -- a lookup per message, never a scan: see the note above
      select i.ord, m.* from input i cross join lateral (
        select ${messageColumns(sql)} from messages
        where chat_id = i.chat_id and sender_id = i.sender_id and client_id = i.client_id
        limit 1
      ) m
    ), fresh as (
      select i.* from input i
      where not exists (select 1 from existing e where e.ord = i.ord)
        and not exists (select 1 from bans b where b.user_id = i.sender_id
                        and (b.expires_at is null or b.expires_at > now()))
    ), counts as (
      select chat_id, count(*)::int as n,
             count(*) filter (where sender_side = 'vendor')::int as to_customer,
             count(*) filter (where sender_side = 'customer')::int as to_vendor
      from fresh group by chat_id
    ), bumped as (
      update chats c set
        last_seq = c.last_seq + k.n,
        updated_at = date_trunc('milliseconds', now()),
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
      returning ${messageColumns(sql)}
    )
    select n.ord::int as ord, false as duplicate, n.base, n.epoch, n.customer_unread,
           n.vendor_unread, ${messageColumns(sql, "m")}
    from numbered n join inserted m on m.chat_id = n.chat_id and m.seq = n.seq
    union all
    select e.ord::int, true, null, null, null, null, ${messageColumns(sql, "e")}
    from existing e`;
}
