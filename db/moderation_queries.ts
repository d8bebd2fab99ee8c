import type { Sql } from "postgres";
import type { ChatStore, ModerationRecord } from "../chat/ports.ts";
import type { Sanction } from "../chat/types.ts";
import { arrayLiteral } from "./array_literal.ts";
import { inRecentWindow } from "./recent_window.ts";
import {
  type BanRow,
  iso,
  type MemberRow,
  type ModerationRow,
  toBan,
  toMember,
  toModerationAction,
} from "./rows.ts";
import { transaction } from "./transactions.ts";

interface SanctionRow {
  user_id: string;
  banned: boolean;
  disconnected_on: Date | null;
}

/** The store's queries of who may act: vendor members, bans, and the moderation log. */
export type ModerationQueries = Pick<
  ChatStore,
  | "addVendorMember"
  | "removeVendorMember"
  | "membersAddedWithin"
  | "membersRemovedWithin"
  | "listVendorMembers"
  | "activeBan"
  | "sanctionsOf"
  | "sanctionedWithin"
  | "ban"
  | "unban"
  | "recordModeration"
>;

/** Vendor members, bans and the moderation log over postgres.js, for createPostgresStore. */
export function createModerationQueries(sql: Sql) {
  const queries: ModerationQueries = {
    async addVendorMember(vendorId, userId, role) {
      const [row] = await sql<MemberRow[]>`
        insert into vendor_members (vendor_id, user_id, role) values (${vendorId}, ${userId}, ${role})
        on conflict (vendor_id, user_id) do update set role = excluded.role
        returning vendor_id, user_id, role, created_at`;
      return toMember(row!);
    },

    async removeVendorMember(vendorId, userId) {
      // kept a day for the sweeps of other instances (membersRemovedWithin)
      const rows = await sql`
        with removed as (
          delete from vendor_members where vendor_id = ${vendorId} and user_id = ${userId}
          returning vendor_id, user_id
        ), pruned as (
          delete from vendor_member_removals where removed_at < now() - interval '1 day'
        )
        insert into vendor_member_removals (vendor_id, user_id)
        select vendor_id, user_id from removed
        returning 1`;
      return rows.length > 0;
    },

    async membersAddedWithin(window) {
      // down vendor_members_by_creation
      const rows = await sql<Array<{ vendor_id: string; user_id: string }>>`
        select vendor_id, user_id from vendor_members
        where ${inRecentWindow(sql, sql`created_at`, window)}
        order by vendor_id, user_id`;
      return rows.map(({ vendor_id, user_id }) => ({ vendor_id, user_id }));
    },

    async membersRemovedWithin(window) {
      // down vendor_member_removals_by_time; one added again since is a member again
      const rows = await sql<Array<{ vendor_id: string; user_id: string }>>`
        select distinct r.vendor_id, r.user_id from vendor_member_removals r
        where ${inRecentWindow(sql, sql`r.removed_at`, window)}
          and not exists (
            select 1 from vendor_members m where m.vendor_id = r.vendor_id and m.user_id = r.user_id
          )
        order by r.vendor_id, r.user_id`;
      return rows.map(({ vendor_id, user_id }) => ({ vendor_id, user_id }));
    },

    async listVendorMembers(vendorId) {
      const rows = await sql<MemberRow[]>`
        select vendor_id, user_id, role, created_at from vendor_members
        where vendor_id = ${vendorId} order by created_at, user_id`;
      return rows.map(toMember);
    },

    async activeBan(userId) {
      const [row] = await sql<BanRow[]>`
        select * from bans where user_id = ${userId}
          and (expires_at is null or expires_at > now())`;
      return row ? toBan(row) : null;
    },

    async sanctionsOf(userIds) {
      if (userIds.length === 0) return new Map();
      const users = arrayLiteral([...new Set(userIds)]);
      // the newest disconnect of each user is one step down moderation_actions_disconnects
      const rows = await sql<SanctionRow[]>`
        select users.user_id, banned.in_force as banned,
          last_disconnect.created_at as disconnected_on
        from unnest(${users}::text[]) as users (user_id)
        cross join lateral (
          select exists (
            select 1 from bans where bans.user_id = users.user_id
              and (expires_at is null or expires_at > now())
          ) as in_force
        ) as banned
        left join lateral (
          select created_at from moderation_actions
          where target_user_id = users.user_id and action = 'disconnect_user'
          order by created_at desc limit 1
        ) as last_disconnect on true
        where banned.in_force or last_disconnect.created_at is not null`;
      const sanctions = new Map<string, Sanction>();
      for (const { user_id, banned, disconnected_on } of rows) {
        sanctions.set(user_id, {
          banned,
          disconnectedOn: disconnected_on === null ? null : iso(disconnected_on),
        });
      }
      return sanctions;
    },

    async sanctionedWithin(window) {
      // down moderation_actions_by_time: only the window's rows are read
      const rows = await sql<{ user_id: string }[]>`
        select distinct target_user_id as user_id from moderation_actions
        where ${inRecentWindow(sql, sql`created_at`, window)}
          and action in ('ban_user', 'disconnect_user') and target_user_id is not null`;
      return rows.map((row) => row.user_id);
    },

    ban({ user_id, moderator_id, reason, duration_seconds }, options = {}) {
      return audited(sql, options.audit, async (db) => {
        // null times an interval is null: a ban until lifted
        const [row] = await db<BanRow[]>`
          insert into bans (user_id, moderator_id, reason, expires_at)
          values (${user_id}, ${moderator_id}, ${reason},
                  now() + ${duration_seconds}::float8 * interval '1 second')
          on conflict (user_id) do update set moderator_id = excluded.moderator_id,
            reason = excluded.reason, expires_at = excluded.expires_at,
            -- a ban in force that is replaced began when it did, and keeps its place in
            -- ListBans (keyset paged on it); one that had run out is over, and this is new
            created_at = case when bans.expires_at is null or bans.expires_at > now()
              then bans.created_at else now() end
          returning *`;
        return toBan(row!);
      });
    },

    unban(userId, options = {}) {
      return audited(sql, options.audit, async (db) => {
        // a ban that has run out goes too, but there was nothing to lift
        const [row] = await db<Array<{ in_force: boolean }>>`
          delete from bans where user_id = ${userId}
          returning (expires_at is null or expires_at > now()) as in_force`;
        return row?.in_force === true;
      });
    },

    recordModeration(action) {
      return insertModeration(sql, action);
    },
  };
  return queries;
}

async function insertModeration(db: Sql, action: ModerationRecord) {
  const [row] = await db<ModerationRow[]>`
    insert into moderation_actions (action, moderator_id, target_user_id,
                                    target_message_id, reason)
    values (${action.action}, ${action.moderator_id}, ${action.target_user_id},
            ${action.target_message_id}, ${action.reason})
    returning *`;
  return toModerationAction(row!);
}

/**
 * `change` alone, or with its audit row in one transaction: the row is written when `change`
 * found its target (a truthy result), and neither stays when either fails.
 */
async function audited<T>(
  sql: Sql,
  audit: ModerationRecord | undefined,
  change: (db: Sql) => Promise<T>,
): Promise<T> {
  if (!audit) return await change(sql);
  return await transaction(sql, async (tx) => {
    const result = await change(tx);
    if (result) await insertModeration(tx, audit);
    return result;
  });
}
