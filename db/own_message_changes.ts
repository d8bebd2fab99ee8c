import type { PendingQuery, Row, Sql } from "postgres";
import type { ChatAsker, OwnChange } from "../chat/ports.ts";
import { bannedNow } from "./asked_reads.ts";
import { changedMessage, deletionCtes } from "./message_changes.ts";
import { messageColumns } from "./rows.ts";

/**
 * Why a change of the asker's message is refused, as SQL over the message `m` as the statement
 * sees it (null: none in their chat), or null when it may go ahead: banned, then not a
 * participant (as a send is refused), then as the message reads to them. Another's message and
 * a tombstone read as unknown, but to its sender a tombstone of their own when `ownTombstone`.
 */
function refusalOf(
  sql: Sql,
  asker: ChatAsker,
  change: { ownTombstone: boolean; textOnly: boolean },
): PendingQuery<Row[]> {
  const { userId, chatId } = asker;
  const ownTombstone = change.ownTombstone ? sql`m.sender_id = ${userId}` : sql`false`;
  const notText = change.textOnly ? sql`m.media_type <> 'text'` : sql`false`;
  return sql`case when ${bannedNow(sql, userId)} then 'banned'
                  when not sender_in_chat(${chatId}, ${userId}) then 'outsider'
                  when m.id is null or (m.deleted_at is not null and not ${ownTombstone})
                    then 'unknown'
                  when m.sender_id <> ${userId} then 'not_sender'
                  when ${notText} then 'not_text' end`;
}

/**
 * The check of a change (refusalOf) and the change itself in one statement (changedMessage):
 * `asked` reads the message by its id in the asker's chat, and `change` names the CTEs that
 * follow it, which must leave `current` (none when refused), `updated` and `parties`. One round
 * trip, the check in the change's own statement as a send's is (both on the statement's
 * snapshot).
 */
async function changedOwn(
  sql: Sql,
  asker: ChatAsker,
  messageId: string,
  change: { refusal: PendingQuery<Row[]>; ctes: PendingQuery<Row[]> },
): Promise<OwnChange> {
  const { refused, change: changed } = await changedMessage(sql, {
    ctes: sql`asked as materialized (
      select ${change.refusal} as refused
      from (select 1) one
      left join messages m on m.id = ${messageId} and m.chat_id = ${asker.chatId}
    ), ${change.ctes}`,
    refused: sql`(select refused from asked)`,
  });
  if (refused) return { refused };
  // gone since the statement's snapshot, deleted by another meanwhile: as unknown
  return changed ?? { refused: "unknown" };
}

/** ChatStore.editOwnMessage over postgres.js. */
export function editOwnMessage(sql: Sql, asker: ChatAsker, messageId: string, content: string) {
  // Each edit of a message is stamped later than the one before it (whose row lock it waited
  // for): sockets are told the edit with the newest edited_at, and now() is when the statement
  // began, which may be the same millisecond as the edit before, or earlier.
  const editedAt = sql`greatest(date_trunc('milliseconds', now()),
                                m.edited_at + interval '1 millisecond')`;
  // The text is compared under the row's lock, with the latest edit's: one compared before (or
  // against this statement's snapshot) would take an edit still under way for the text the
  // message has, and an edit back to the text it replaces would change nothing. Unchanged, the
  // message is answered as that lock shows it, in the same statement: read after, it could be
  // another edit's, committed meanwhile.
  return changedOwn(sql, asker, messageId, {
    refusal: refusalOf(sql, asker, { ownTombstone: false, textOnly: true }),
    ctes: sql`current as (
      select ${messageColumns(sql)} from messages
      where id = ${messageId} and deleted_at is null and media_type = 'text'
        and (select refused from asked) is null
      for update
    ), updated as (
      update messages m set content = ${content}, edited_at = ${editedAt},
                            updated_at = ${editedAt}
      from current
      where m.id = current.id and current.content is distinct from ${content}
      returning ${messageColumns(sql, "m")}
    ), parties as (
      update chats set unread_epoch = unread_epoch + 1
      where id = (select chat_id from updated)
      returning user_id, vendor_id
    )`,
  });
}

/** ChatStore.deleteOwnMessage over postgres.js. */
export function deleteOwnMessage(sql: Sql, asker: ChatAsker, messageId: string) {
  return changedOwn(sql, asker, messageId, {
    refusal: refusalOf(sql, asker, { ownTombstone: true, textOnly: false }),
    ctes: deletionCtes(sql, {
      messageId,
      deletedBy: asker.userId,
      allowed: sql`(select refused from asked) is null`,
    }),
  });
}
