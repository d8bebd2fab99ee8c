import { Buffer } from "node:buffer";
import type { PendingQuery, Row, Sql } from "postgres";
import { ChatError } from "../chat/errors.ts";
import type { AdminStore, KeysetPage, TimeCursor } from "../chat/ports.ts";
import { STORE_TIMEOUT_MS, withErrorTranslation } from "./errors.ts";
import {
  type BanRow,
  type ChatRow,
  messageColumns,
  type MessageRow,
  type ModerationRow,
  toBan,
  toChat,
  toModerationAction,
  toStoredMessage,
} from "./rows.ts";
import { cancelledOnAbort } from "./statement_deadline.ts";
import { transaction } from "./transactions.ts";
import { withWholeResults } from "./whole_results.ts";
import { createStoreCalls } from "./store_calls.ts";

/** The text search configuration of migration 0002; queries must use the same one. */
const SEARCH_CONFIG = "simple";

/**
 * The words as websearch_to_tsquery should read them. Outside quotes it ends a word at a colon
 * (tsquery's `word:*`), so a link pasted from a message, `http://spam.biz/free` (indexed as
 * 'spam.biz/free', 'spam.biz', '/free'), was looked for as 'http' & '/spam.biz/free' and never
 * found, nor excluded with `-`. Quoted, text is parsed as the messages were: a run with a colon
 * outside quotes is quoted, after the `-` that excludes it.
 */
function quotedColonRuns(text: string): string {
  let inQuotes = false;
  return text.split(/(\s+)/).map((run) => {
    const quotes = run.split('"').length - 1;
    const quoted = inQuotes || quotes > 0;
    if (quotes % 2 === 1) inQuotes = !inQuotes;
    if (quoted || !run.includes(":")) return run;
    const words = run.replace(/^-+/, "");
    return `${run.slice(0, run.length - words.length)}"${words}"`;
  }).join("");
}

/**
 * How long the database lets a search run. Its caller is answered `unavailable` after
 * STORE_TIMEOUT_MS in any case, but the query itself would run on, holding a connection of the
 * pool the chat shares: a word in most of millions of messages could keep it for minutes. Ended
 * a second earlier by the database, the search frees its connection before its caller hears.
 */
const SEARCH_TIMEOUT_MS = STORE_TIMEOUT_MS - 1_000;

/** The exact sort key of a row, as PostgreSQL prints it (microseconds included). */
type Keyed<Row> = Row & { cursor_at: string };

/**
 * The most bytes of text a page of messages holds. 500 messages of 4,000 characters pass 6 MB,
 * and a gRPC client refuses a reply over 4 MiB unless told otherwise; a page cut short has a
 * next page like a full one.
 */
const MAX_PAGE_TEXT_BYTES = 3 * 1024 * 1024;

/** A message row's text in UTF-8 bytes, and a bound for the rest of its reply. */
function messageBytes(row: MessageRow): number {
  return 512 + Buffer.byteLength(row.content ?? "") + Buffer.byteLength(row.sender_id) +
    Buffer.byteLength(row.receiver_id) + Buffer.byteLength(row.deleted_by ?? "");
}

/** Of `rows`, the first ones whose messages fit in MAX_PAGE_TEXT_BYTES (always one). */
function withinPageBytes<Row extends MessageRow>(rows: Row[]): Row[] {
  let bytes = 0;
  for (const [index, row] of rows.entries()) {
    bytes += messageBytes(row);
    if (bytes > MAX_PAGE_TEXT_BYTES && index > 0) return rows.slice(0, index);
  }
  return rows;
}

/**
 * Takes `limit + 1` rows: the extra one only says that there is a next page, as does a page
 * cut short by `fit`.
 */
function keysetPage<Row, Item, Cursor>(
  rows: Row[],
  limit: number,
  toItem: (row: Row) => Item,
  cursorOf: (row: Row) => Cursor,
  fit: (page: Row[]) => Row[] = (page) => page,
): KeysetPage<Item, Cursor> {
  const page = fit(rows.slice(0, limit));
  const last = page.at(-1);
  return {
    items: page.map(toItem),
    next: rows.length > page.length && last !== undefined ? cursorOf(last) : null,
  };
}

/**
 * The admin plane's lists and search over postgres.js. Every list is keyset-paged on a key
 * that never changes for a row, so pages neither skip nor repeat rows while others write (the
 * search's rank is the exception: an edit changes it); every query is a tagged template
 * (parameterised), user words included.
 */
export function createAdminStore(pool: Sql): AdminStore {
  // a list that gives up at the store timeout takes its statement with it (store_calls.ts)
  const calls = createStoreCalls();
  const sql = withWholeResults(pool, calls);
  /**
   * The rows past `after` in newest-first order of (created_at, id). A cursor's time goes as
   * text: typed timestamptz, postgres.js sends it through a JavaScript Date, which cuts its
   * microseconds, and the rows of the cursor's millisecond before it were on no page.
   */
  const olderThan = (after: TimeCursor | undefined) =>
    after === undefined
      ? sql``
      : sql`and (created_at, id) < (${after.at}::text::timestamptz, ${after.key}::uuid)`;

  const store: AdminStore = {
    async listChats({ user_id, vendor_id, limit, after }) {
      // The page's keys first, read in order from the participant's index (0015) alone, then
      // its rows by primary key (an array: a join was planned as a scan of every chat when the
      // generic plan guesses a tenth of the table for `limit`). The participant reaches the
      // planner as a one-row subquery, whose value it does not see: seeing it, PostgreSQL weighs
      // a big participant's share of all chats and may walk every chat newest first instead, the
      // whole table when that participant's chats are the oldest (a share does not say when
      // they were made).
      const rows = await sql<Keyed<ChatRow>[]>`
        select id, user_id, vendor_id, last_seq, created_at, updated_at,
               created_at::text as cursor_at
        from chats
        where id = any(array(
          select id from chats
          where true
            ${user_id === undefined ? sql`` : sql`and user_id = (select ${user_id}::text)`}
            ${vendor_id === undefined ? sql`` : sql`and vendor_id = (select ${vendor_id}::text)`}
            ${olderThan(after)}
          order by created_at desc, id desc
          limit ${limit + 1}
        ))
        order by created_at desc, id desc`;
      return keysetPage(
        rows,
        limit,
        toChat,
        (row): TimeCursor => ({ at: row.cursor_at, key: row.id }),
      );
    },

    async listMessages({ chat_id, include_deleted, limit, before_seq }) {
      const rows = await sql<MessageRow[]>`
        select ${messageColumns(sql)} from messages
        where chat_id = ${chat_id}
          ${include_deleted ? sql`` : sql`and deleted_at is null`}
          ${before_seq === undefined ? sql`` : sql`and seq < ${before_seq}`}
        order by seq desc
        limit ${limit + 1}`;
      return keysetPage(rows, limit, toStoredMessage, (row) => row.seq, withinPageBytes);
    },

    async searchMessages(query, options = {}) {
      const { limit, after } = query;
      const text = quotedColonRuns(query.text);
      const signal = options.signal ?? new AbortController().signal;
      // The words go to websearch_to_tsquery as a parameter: quotes, `or` and `-` are search
      // syntax there, never SQL. The GIN index finds the rows; ts_rank (normalised by length,
      // so a short message that is about the words beats a long one that mentions them) orders
      // them.
      // The rank goes out as a float8: a real is written with too few digits to be read back
      // as itself where extra_float_digits is 0 or less (a database's or role's setting), and
      // the next page's cursor would be another rank, repeating or skipping matches.
      // A custom plan every time: a generic plan cannot see how common the words are, and
      // would intersect the GIN index with the chat filter even for a word in most messages
      // (25 ms) where reading the chat's rows and testing each is 0.05 ms.
      const rows = await transaction(sql, async (tx) => {
        await tx`
          select set_config('plan_cache_mode', 'force_custom_plan', true),
                 set_config('statement_timeout', ${String(SEARCH_TIMEOUT_MS)}, true)`;
        return await cancelledOnAbort(
          tx<Keyed<MessageRow & { rank: number }>[]>`
        with q as (select websearch_to_tsquery(${SEARCH_CONFIG}::regconfig, ${text}) as query)
        select ${messageColumns(sql)}, rank::float8 as rank, cursor_at from (
          select m.*, ts_rank(m.search_vector, q.query, 1) as rank,
                 m.created_at::text as cursor_at
          from messages m cross join q
          where m.search_vector @@ q.query
            ${query.include_deleted ? sql`` : sql`and m.deleted_at is null`}
            ${query.chat_id === undefined ? sql`` : sql`and m.chat_id = ${query.chat_id}`}
            ${query.sender_id === undefined ? sql`` : sql`and m.sender_id = ${query.sender_id}`}
            ${
            query.created_after === undefined
              ? sql``
              : sql`and m.created_at >= ${query.created_after}::timestamptz`
          }
            ${
            query.created_before === undefined
              ? sql``
              : sql`and m.created_at < ${query.created_before}::timestamptz`
          }
        ) ranked
        where true
          ${
            after === undefined ? sql`` : sql`and (rank, created_at, seq, id) <
            (${after.rank}::real, ${after.at}::text::timestamptz, ${after.seq}::int, ${after.key}::uuid)`
          }
        -- a group commit writes its messages with one created_at: seq tells a chat's apart
        order by rank desc, created_at desc, seq desc, id desc
        limit ${limit + 1}`,
          signal,
        );
      }, { signal });
      if (rows.length === 0 && after === undefined) {
        // Only now worth asking why: a query of punctuation alone has no words to look for.
        const [parsed] = await sql<Array<{ nodes: number }>>`
          select numnode(websearch_to_tsquery(${SEARCH_CONFIG}::regconfig, ${text}))::int as nodes`;
        if (parsed?.nodes === 0) {
          throw new ChatError("invalid_payload", "the query has no words to search for", {
            issues: [{ path: "query", message: "has no words to search for" }],
          });
        }
      }
      return keysetPage(rows, limit, toStoredMessage, (row) => ({
        rank: row.rank,
        at: row.cursor_at,
        seq: row.seq,
        key: row.id,
      }), withinPageBytes);
    },

    async listBans({ limit, after }) {
      // Bans until lifted and bans for a time that has not ended, each read by its own index
      // (0018), then merged: one condition for both would read every ban, those long over too.
      const older = after === undefined
        ? sql``
        : sql`and (created_at, user_id) < (${after.at}::text::timestamptz, ${after.key})`;
      const inForce = (which: PendingQuery<Row[]>) =>
        sql`(
          select user_id, moderator_id, reason, created_at, expires_at from bans
          where ${which} ${older}
          order by created_at desc, user_id desc
          limit ${limit + 1}
        )`;
      const rows = await sql<Keyed<BanRow>[]>`
        select *, created_at::text as cursor_at from (
          ${inForce(sql`expires_at is null`)}
          union all
          ${inForce(sql`expires_at > now()`)}
        ) in_force
        order by created_at desc, user_id desc
        limit ${limit + 1}`;
      return keysetPage(
        rows,
        limit,
        ({ cursor_at: _, ...row }) => toBan(row),
        (row): TimeCursor => ({ at: row.cursor_at, key: row.user_id }),
      );
    },

    async listModerationActions({ moderator_id, target_user_id, limit, after }) {
      const rows = await sql<Keyed<ModerationRow>[]>`
        select id, action, moderator_id, target_user_id, target_message_id, reason, created_at,
               created_at::text as cursor_at
        from moderation_actions
        where true
          ${moderator_id === undefined ? sql`` : sql`and moderator_id = ${moderator_id}`}
          ${target_user_id === undefined ? sql`` : sql`and target_user_id = ${target_user_id}`}
          ${olderThan(after)}
        order by created_at desc, id desc
        limit ${limit + 1}`;
      return keysetPage(
        rows,
        limit,
        ({ cursor_at: _, ...row }) => toModerationAction(row),
        (row): TimeCursor => ({ at: row.cursor_at, key: row.id }),
      );
    },

    async stats(options = {}) {
      // seq is gapless per chat, so the sum of last_seq counts every message without reading
      // the messages table. Still a scan of every chat (a third of a second at 2M): one whose
      // caller left gives its connection back at once.
      const [row] = await cancelledOnAbort(
        sql<Array<{ chats: string; messages: string }>>`
        select count(*)::bigint as chats, coalesce(sum(last_seq), 0)::bigint as messages
        from chats`,
        options.signal ?? new AbortController().signal,
      );
      return { chats: Number(row?.chats ?? 0), messages: Number(row?.messages ?? 0) };
    },
  };
  return withErrorTranslation(store, { calls });
}
