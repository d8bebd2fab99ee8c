-- migrate: without transaction
-- ListBans pages the bans in force newest first by (created_at, user_id), and bans had no index
-- but its primary key: every page read the whole table and sorted it, bans that ran out long ago
-- included (they stay until their user is banned again or unbanned). Bans until lifted are read
-- in order from an index of their own, the cursor's row comparison part of its condition; bans
-- for a time are found by their end, among the ones that have not ended, which a ban's length
-- keeps few however many have run out.
--
-- Built concurrently; safe to run again (see 0009).
drop index concurrently if exists bans_until_lifted_by_creation;
create index concurrently bans_until_lifted_by_creation on bans (created_at desc, user_id desc)
  where expires_at is null;
drop index concurrently if exists bans_by_end;
create index concurrently bans_by_end on bans (expires_at) where expires_at is not null;
