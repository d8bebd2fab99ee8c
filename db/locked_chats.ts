import type { Sql } from "postgres";
import { arrayLiteral } from "./array_literal.ts";

/**
 * How long a statement of the message writer waits for a row lock before PostgreSQL fails it
 * (`lock_timeout` of the writer's own connections, see connectPool). A chat row is held for
 * milliseconds by the service's own writes; one held longer is held from outside (an operator's
 * `select ... for update`, a long admin transaction, a migration), and while the writer waits
 * for it every chat of its lane waits too. Past this, the chat's messages and read marks are
 * answered `unavailable` and the rest of the batch is written again without them.
 */
export const WRITER_LOCK_TIMEOUT_MS = 500;

/**
 * Of `chatIds`, those whose row another transaction now holds in a mode that the writer's
 * update of the chat (`for no key update`) would wait for. The free ones are locked only for
 * the moment of this statement.
 */
export function lockedChats(sql: Pick<Sql, "unsafe">, chatIds: readonly string[]) {
  return sql.unsafe<Array<{ id: string }>>(LOCKED_CHATS, [arrayLiteral(chatIds)]);
}

const LOCKED_CHATS = `
  with free as (
    select id from chats where id = any($1::uuid[]) for no key update skip locked
  )
  select id from chats where id = any($1::uuid[]) and id not in (select id from free)`;
