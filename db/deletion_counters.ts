import type { PendingQuery, Row, Sql } from "postgres";

/**
 * The chat's row once the messages in the statement's CTE `updated` were deleted: its unread
 * counters lose those not read yet, and its unread epoch moves on. One spelling for a sender's
 * deletion and a moderator's.
 */
export function chatAfterDeletion(sql: Sql): PendingQuery<Row[]> {
  return sql`update chats set
    customer_unread = customer_unread - (select count(*) from updated
                                         where sender_side = 'vendor' and not is_read),
    vendor_unread = vendor_unread - (select count(*) from updated
                                     where sender_side = 'customer' and not is_read),
    unread_epoch = unread_epoch + 1
    where id = (select chat_id from updated)`;
}
