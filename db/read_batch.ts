import type { Sql } from "postgres";
import type { Side } from "../chat/types.ts";
import { messageColumnList, type MessageRow } from "./rows.ts";
import { arrayLiteral } from "./array_literal.ts";

/** One `read_message`: the reader's side marks a message of the chat read. */
export interface ReadMark {
  chat_id: string;
  message_id: string;
  reader_side: Side;
  /** Kept on the message as `read_by`, for replays after a NATS outage. */
  reader_id: string;
}

/** The chat's unread state as a read statement left it. */
export interface ChatAfterRead {
  epoch: number;
  lastSeq: number;
  customerUnread: number;
  vendorUnread: number;
}

/** The columns of ChatAfterRead, for RETURNING after an update of `chats`. */
export function chatAfterRead(sql: Pick<Sql, "unsafe">) {
  return sql.unsafe(chatAfterReadList());
}

/** The same as text, each prefixed with `alias.` when one is given. */
function chatAfterReadList(alias?: "c"): string {
  const prefix = alias === undefined ? "" : `${alias}.`;
  return `${prefix}unread_epoch as "epoch", ${prefix}last_seq as "lastSeq",
    ${prefix}customer_unread as "customerUnread", ${prefix}vendor_unread as "vendorUnread"`;
}

/** A mark's message: changed (and how it left the chat) or as it already was. */
export type ReadRow =
  & MessageRow
  & { ord: number; changed: boolean }
  & (
    | ({ changed: true } & ChatAfterRead)
    | { changed: false }
  );

/**
 * Marks a batch of messages read in one statement (the writer's group commit of read marks).
 * Each chat's counters drop by what was marked and its unread_epoch rises once. Rows come back
 * by `ord` (1-based position in `marks`); a mark whose message is unknown, in another chat or
 * deleted, or whose reader is banned or no longer in the chat, has none. Of the marks of one
 * message, only the first from the side it was sent to can change it (and is the reader kept as
 * `read_by`); the others come back unchanged. Why a mark was refused is not told: a branch for
 * the marks without a row, or a left join keeping them, adds to the plan and estimate of every
 * batch (the input no longer inlined, or the checks costed for every mark), for a refusal that
 * is rare and is worded by the domain with reads of its own (chat/read_operations.ts).
 */
export function markReadBatch(sql: Pick<Sql, "unsafe">, marks: readonly ReadMark[]) {
  return sql.unsafe<ReadRow[]>(MARK_READ_BATCH, [
    arrayLiteral(marks.map((mark) => mark.message_id)),
    arrayLiteral(marks.map((mark) => mark.chat_id)),
    arrayLiteral(marks.map((mark) => mark.reader_side)),
    arrayLiteral(marks.map((mark) => mark.reader_id)),
  ], { prepare: true });
}

/** markReadBatch's statement: its text is a constant, as the message batch's (see there). */
const MARK_READ_BATCH = `
  with input as (
    select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
      with ordinality as t(message_id, chat_id, reader_side, reader_id, ord)
  ), found as (
    -- each message locked in id order, as read_up_to locks them: in any two orders two
    -- statements could each hold a message the other waits for
    select i.ord, i.reader_side, i.reader_id, x.* from (select * from input order by message_id) i
    cross join lateral (
      select ${messageColumnList()} from messages where id = i.message_id limit 1 for update
    ) x
    where x.chat_id = i.chat_id and x.deleted_at is null
      -- the reader is still in the chat and not banned (checked here, not only by the edge's
      -- cached membership, which learns of a removal or a ban later, as INSERT_BATCH does)
      and sender_in_chat(i.chat_id, i.reader_id)
      and not exists (select 1 from bans b where b.user_id = i.reader_id
                      and (b.expires_at is null or b.expires_at > now()))
  ), updated as (
    -- by primary key only; "is not true" rather than "not is_read", which would let the
    -- planner reach the rows through the index of every unread message instead. One mark a
    -- message, the first that may change it: the sender's own side may not, and of two
    -- readers the one answered changed must be the one kept as read_by.
    update messages m set is_read = true, read_at = date_trunc('milliseconds', now()),
                          read_by = f.reader_id, updated_at = date_trunc('milliseconds', now())
    from found f
    where m.id = f.id and m.sender_side <> f.reader_side and m.is_read is not true
      and m.deleted_at is null
      and not exists (select 1 from found e where e.id = f.id and e.reader_side <> e.sender_side
                      and e.ord < f.ord)
    returning f.ord as mark, ${messageColumnList("m")}
  ), counts as (
    select chat_id, count(*) filter (where sender_side = 'vendor')::int as to_customer,
           count(*) filter (where sender_side = 'customer')::int as to_vendor
    from updated group by chat_id
  ), counter as (
    update chats c set customer_unread = c.customer_unread - k.to_customer,
                       vendor_unread = c.vendor_unread - k.to_vendor,
                       unread_epoch = c.unread_epoch + 1
    from counts k where c.id = k.chat_id
    returning c.id, ${chatAfterReadList("c")}
  )
  select u.mark::int as ord, true as changed, ${messageColumnList("u")},
         k."epoch", k."lastSeq", k."customerUnread", k."vendorUnread"
  from updated u join counter k on k.id = u.chat_id
  union all
  -- the batch's other marks of a message it changed: unchanged, the message as it was left
  select f.ord::int, false, ${messageColumnList("u")}, null, null, null, null
  from found f join updated u on u.id = f.id where f.ord <> u.mark
  union all
  select f.ord::int, false, ${messageColumnList("f")}, null, null, null, null
  from found f where not exists (select 1 from updated u where u.id = f.id)`;
