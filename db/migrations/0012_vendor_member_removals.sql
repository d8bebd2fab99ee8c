-- Vendor members removed in the last day. Every instance's sweep reads the recent ones, for a
-- removal whose event never reached it (its instance ended between the commit and the publish):
-- the removed member's sockets are told again. A removal prunes the rows older than a day.
create table vendor_member_removals (
  vendor_id text not null,
  user_id text not null,
  removed_at timestamptz not null default now()
);
create index vendor_member_removals_by_time on vendor_member_removals (removed_at);
