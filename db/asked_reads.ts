import type { PendingQuery, Row, Sql } from "postgres";
import type { Asker, ReadRefusal } from "../chat/ports.ts";

/** Whether the user is banned now, as SQL (the ban in force that refuses sends and read marks). */
export function bannedNow(sql: Sql, userId: string): PendingQuery<Row[]> {
  return sql`exists (select 1 from bans b where b.user_id = ${userId}
                     and (b.expires_at is null or b.expires_at > now()))`;
}

/** What readAsked gives: the read's rows, or why it was refused. */
export type AskedRows<R> = { refused: ReadRefusal } | { chatId: string | null; rows: R[] };

/**
 * The rows of `select` (a read of the asker's chat, or of their own chats), in the order
 * `orderBy` gives over them (aliased `r`), when the asker is a participant of the chat and not
 * banned now, checked in the same statement: one round trip, and the check sees what the read
 * does. Refused, the read's rows are not read (its condition is on the check alone). `present`
 * is a column every row of `select` has a value in: the statement's one row when nothing was
 * read has none. With the rows, the chat's id as the store spells it (a uuid in lower case).
 */
export async function readAsked<R extends Row>(
  sql: Sql,
  asker: Asker,
  read: { select: PendingQuery<R[]>; orderBy: PendingQuery<Row[]>; present: keyof R },
): Promise<AskedRows<R>> {
  const { userId, chatId } = asker;
  const outsider = chatId === null ? sql`false` : sql`not sender_in_chat(${chatId}, ${userId})`;
  const rows = await sql<Array<{ asked_chat_id: string | null; refused: ReadRefusal | null }>>`
    with asked as materialized (
      select ${chatId}::uuid as chat_id,
             case when ${outsider} then 'outsider'
                  when ${bannedNow(sql, userId)} then 'banned' end as refused
    )
    select asked.chat_id as asked_chat_id, asked.refused, r.*
    from asked
    left join lateral (
      select * from (${read.select}) r where asked.refused is null
    ) r on true
    order by ${read.orderBy}`;
  const refused = rows[0]?.refused ?? null;
  if (refused !== null) return { refused };
  return {
    chatId: rows[0]?.asked_chat_id ?? null,
    rows: (rows as unknown as R[]).filter((row) => row[read.present] !== null),
  };
}
