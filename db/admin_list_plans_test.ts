import assert from "node:assert/strict";
import type { Sql } from "postgres";
import {
  onOneConnection,
  PLAN_MODES,
  readsUnderPlan,
  withEachPlanMode,
} from "../tests/support/statement_reads.ts";
import type { Sanction } from "../chat/types.ts";
import { createAdminStore } from "./admin_store.ts";
import { createPostgresStore } from "./postgres_store.ts";

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

// The admin plane's lists page by keys that an index gives in order, with the cursor in the
// index condition: a page reads its rows, however the participant's rows are spread over time
// and whether PostgreSQL plans with the values or without (see statement_plans_test.ts).

/**
 * 20,000 moderation actions of the last year by 50 moderators against 5,000 users. Before them
 * all, the 2,000 actions of a moderator and the 2,000 against a user, a twelfth of the table
 * each; and one action by each yesterday, after which their next page starts.
 */
async function actionsOfOldParticipants(sql: Sql) {
  await sql`
    insert into moderation_actions (action, moderator_id, target_user_id, reason, created_at)
    select 'disconnect_user', moderator_id, target_user_id, 'spam', at from (
      select 'moderator-gone', 'user-' || n, now() - interval '3 years' + n * interval '1 minute'
      from generate_series(1, 2000) n
      union all
      select 'moderator-' || n % 50, 'target-gone', now() - interval '2 years' + n * interval '1 minute'
      from generate_series(1, 2000) n
      union all
      select 'moderator-' || n % 50, 'user-' || n % 5003,
             now() - interval '1 year' + n * interval '20 minutes'
      from generate_series(1, 20000) n
      union all
      values ('moderator-gone', 'user-1', now() - interval '1 day'),
             ('moderator-1', 'target-gone', now() - interval '1 day')
    ) action (moderator_id, target_user_id, at)`;
  await sql`vacuum analyze moderation_actions`;
}

Deno.test("ListModerationActions reads a page of a moderator's or a target's actions, not all of them nor every newer action", () =>
  onOneConnection(async (sql) => {
    await actionsOfOldParticipants(sql);
    const filters = [{ moderator_id: "moderator-gone" }, { target_user_id: "target-gone" }];
    for (const [filter, plan] of withEachPlanMode(filters)) {
      const listed: string[] = [];
      const reads = await readsUnderPlan(sql, { table: "moderation_actions", plan }, async (tx) => {
        const admin = createAdminStore(tx);
        // the recent action alone, then a page of the old ones after it
        const first = await admin.listModerationActions({ ...filter, limit: 1 });
        assert.ok(first.next);
        const second = await admin.listModerationActions({
          ...filter,
          limit: 50,
          after: first.next,
        });
        listed.push(...[...first.items, ...second.items].map((action) => action.id));
      });
      const newest = await sql<Array<{ id: string }>>`
        select id from moderation_actions
        where ${
        "moderator_id" in filter
          ? sql`moderator_id = ${filter.moderator_id}`
          : sql`target_user_id = ${filter.target_user_id}`
      }
        order by created_at desc, id desc limit 51`;
      assert.deepEqual(listed, newest.map((action) => action.id));
      const which = `${JSON.stringify(filter)} with ${plan}`;
      assert.equal(reads.seqScans, 0, `${which}: a scan of all actions`);
      // each page is its rows and the one that says there is a next page
      assert.ok(reads.rowsRead <= 2 + 51, `${which}: ${reads.rowsRead} actions read`);
    }
  }));

Deno.test("a new chat is written into one index by creation time, that ListChats and the sweep's window both read", () =>
  onOneConnection(async (sql) => {
    // 20,000 chats of the last year, then one a minute in the last 30 minutes
    await sql`
      insert into chats (user_id, vendor_id, created_at, updated_at)
      select 'customer-' || n, 'vendor-' || n % 200, at, at from (
        select n, now() - interval '1 year' + n * interval '20 minutes'
        from generate_series(1, 20000) n
        union all
        select 20000 + n, now() - n * interval '1 minute' from generate_series(1, 30) n
      ) chat (n, at)`;
    await sql`vacuum analyze chats`;
    const [byCreation] = await sql<[{ indexes: string[] }]>`
      select array_agg(c.relname::text order by c.relname) as indexes
      from pg_index i
      join pg_class c on c.oid = i.indexrelid
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
      where i.indrelid = 'chats'::regclass and a.attname = 'created_at'`;
    assert.deepEqual(byCreation.indexes, ["chats_by_created"]);
    const window = { withinMs: 20.5 * MINUTE_MS, exceptLastMs: 10.5 * MINUTE_MS };
    for (const plan of PLAN_MODES) {
      const found: string[] = [];
      const reads = await readsUnderPlan(sql, { table: "chats", plan }, async (tx) => {
        const chats = await createPostgresStore(tx).chatsCreatedWithin(window);
        found.push(...chats.map((chat) => chat.user_id));
      });
      const expected = Array.from({ length: 10 }, (_, n) => `customer-${20020 - n}`);
      assert.deepEqual(found, expected);
      assert.equal(reads.seqScans, 0, `${plan}: a scan of all chats`);
      assert.ok(reads.rowsRead <= 10, `${plan}: ${reads.rowsRead} chats read`);
    }
  }));

Deno.test("ListBans reads the bans in force of a page, not every ban nor those that ran out", () =>
  onOneConnection(async (sql) => {
    // 20,000 bans of the last year: 2,000 until lifted, the oldest; then 18,000 for a day that
    // ran out, and 30 for a time that has not, the newest
    await sql`
      insert into bans (user_id, moderator_id, reason, created_at, expires_at)
      select 'user-' || n, 'moderator', 'spam', at,
             case when n > 19970 then now() + interval '1 day'
                  when n > 2000 then at + interval '1 day' end
      from (select n, now() - interval '1 year' + n * interval '20 minutes'
            from generate_series(1, 20000) n) ban (n, at)`;
    await sql`vacuum analyze bans`;
    for (const plan of PLAN_MODES) {
      const listed: string[] = [];
      const reads = await readsUnderPlan(sql, { table: "bans", plan }, async (tx) => {
        const admin = createAdminStore(tx);
        const first = await admin.listBans({ limit: 50 });
        assert.ok(first.next);
        const second = await admin.listBans({ limit: 50, after: first.next });
        listed.push(...[...first.items, ...second.items].map((ban) => ban.user_id));
      });
      const newest = [
        ...Array.from({ length: 30 }, (_, n) => `user-${20000 - n}`),
        ...Array.from({ length: 70 }, (_, n) => `user-${2000 - n}`),
      ];
      assert.deepEqual(listed, newest);
      assert.equal(reads.seqScans, 0, `${plan}: a scan of all bans`);
      // each page: its bans until lifted and the 30 for a time in force
      assert.ok(reads.rowsRead <= 2 * (51 + 30), `${plan}: ${reads.rowsRead} bans read`);
    }
  }));

Deno.test("a connecting user's newest disconnect is read alone, not after every other action against that user", () =>
  onOneConnection(async (sql) => {
    // 20,000 actions of the last year; against a spammer, a disconnect a year ago and then the
    // deletion of 2,000 of their messages
    await sql`
      insert into moderation_actions (action, moderator_id, target_user_id, reason, created_at)
      select action, 'moderator-' || n % 50, target_user_id, 'spam', at from (
        select n, 'disconnect_user', 'user-' || n % 5003,
               now() - interval '1 year' + n * interval '20 minutes'
        from generate_series(1, 20000) n
        union all
        select 0, 'disconnect_user', 'spammer', now() - interval '1 year'
        union all
        select n, 'delete_message', 'spammer', now() - interval '1 day' + n * interval '1 second'
        from generate_series(1, 2000) n
      ) action (n, action, target_user_id, at)`;
    await sql`vacuum analyze moderation_actions`;
    for (const plan of PLAN_MODES) {
      const found: Sanction[] = [];
      const reads = await readsUnderPlan(sql, { table: "moderation_actions", plan }, async (tx) => {
        found.push(...(await createPostgresStore(tx).sanctionsOf(["spammer"])).values());
      });
      assert.equal(found.length, 1);
      assert.equal(found[0]!.banned, false);
      // the disconnect of a year ago
      const ago = Date.now() - Date.parse(found[0]!.disconnectedOn!);
      assert.ok(ago > 364 * DAY_MS, `${plan}: not the old disconnect`);
      assert.equal(reads.seqScans, 0, `${plan}: a scan of all actions`);
      assert.ok(reads.rowsRead <= 1, `${plan}: ${reads.rowsRead} actions read`);
    }
  }));
