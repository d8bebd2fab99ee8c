import type { PendingQuery, Row, Sql } from "postgres";
import type { ChangeRefusal, DeletionAudit, MessageChange } from "../chat/ports.ts";
import { ChatError } from "../chat/errors.ts";
import { messageColumns, type MessageRow, toStoredMessage } from "./rows.ts";

/**
 * The statement's one row: why it was refused (own changes only), or the message after it (all
 * null when none) and, changed, its chat's sides.
 */
type ChangeRow =
  & { refused: ChangeRefusal | null; changed: boolean | null }
  & { chat_user_id: string | null; chat_vendor_id: string | null }
  & (MessageRow | { [column in keyof MessageRow]: null });

/**
 * A change of one message in one statement, with its answer. `ctes` must leave `current` (the
 * row locked, as the lock shows it; none when there is nothing to change), `updated` (the row
 * changed, if it was) and `parties` (the chat's row the change updated, returning its user_id
 * and vendor_id: whom to tell, with no read of the chat besides); `refused`, SQL over them, why
 * the change was refused (null: it was not). `change` is null when refused or when there is no
 * message to answer. The message is answered as the lock shows it, not
 * as the statement's snapshot does: a change committed meanwhile (a deletion by another) is seen.
 */
export async function changedMessage(
  sql: Sql,
  change: { ctes: PendingQuery<Row[]>; refused?: PendingQuery<Row[]> },
): Promise<{ refused: ChangeRefusal | null; change: MessageChange | null }> {
  const [row] = await sql<ChangeRow[]>`
    with ${change.ctes}
    select ${change.refused ?? sql`null::text`} as refused, r.*,
           parties.user_id as chat_user_id, parties.vendor_id as chat_vendor_id
    from (select 1) one
    left join lateral (
      select *, true as changed from updated
      union all
      select *, false as changed from current where not exists (select 1 from updated)
    ) r on true
    left join parties on true`;
  const refused = row?.refused ?? null;
  if (refused || !row || row.id === null) return { refused, change: null };
  const message = toStoredMessage(row);
  if (row.changed !== true) return { refused, change: { message, changed: false } };
  if (row.chat_user_id === null || row.chat_vendor_id === null) {
    throw new ChatError("internal", "a message was changed without its chat");
  }
  const chat = { id: message.chat_id, user_id: row.chat_user_id, vendor_id: row.chat_vendor_id };
  return { refused, change: { message, changed: true, chat } };
}

/**
 * The CTEs of a deletion for changedMessage, one spelling for a sender's and a moderator's: the
 * message locked when `allowed` (SQL) holds, then tombstoned by `deletedBy` unless it was
 * already, and its chat's row updated (its unread counters lose it if it was not read yet, its
 * unread epoch moves on). Locked first: a deletion by another meanwhile is seen, and the message
 * is answered as that deletion left it, not tombstoned twice.
 */
export function deletionCtes(
  sql: Sql,
  deletion: { messageId: string; deletedBy: string; allowed: PendingQuery<Row[]> },
): PendingQuery<Row[]> {
  const deletedAt = sql`date_trunc('milliseconds', now())`;
  return sql`current as (
      select ${messageColumns(sql)} from messages
      where id = ${deletion.messageId} and ${deletion.allowed}
      for update
    ), updated as (
      update messages m set deleted_at = ${deletedAt}, deleted_by = ${deletion.deletedBy},
                            updated_at = ${deletedAt}
      from current
      where m.id = current.id and current.deleted_at is null
      returning ${messageColumns(sql, "m")}
    ), parties as (
      update chats set
        customer_unread = customer_unread - (select count(*) from updated
                                             where sender_side = 'vendor' and not is_read),
        vendor_unread = vendor_unread - (select count(*) from updated
                                         where sender_side = 'customer' and not is_read),
        unread_epoch = unread_epoch + 1
      where id = (select chat_id from updated)
      returning user_id, vendor_id
    )`;
}

/**
 * ChatStore.deleteMessage over postgres.js: one statement, the audit row (aimed at the message
 * and its sender as locked) among its CTEs, so that neither stays when either fails and a
 * moderator's delete needs no read of the message or its chat beforehand.
 */
export async function deleteMessage(
  sql: Sql,
  messageId: string,
  options: { deletedBy: string; audit?: DeletionAudit | undefined },
): Promise<MessageChange | null> {
  const { deletedBy, audit } = options;
  const deletion = deletionCtes(sql, { messageId, deletedBy, allowed: sql`true` });
  const audited = audit
    ? sql`, audited as (
        insert into moderation_actions (action, moderator_id, target_user_id,
                                        target_message_id, reason)
        select ${audit.action}, ${audit.moderator_id}, sender_id, id, ${audit.reason}
        from current
      )`
    : sql``;
  return (await changedMessage(sql, { ctes: sql`${deletion}${audited}` })).change;
}
