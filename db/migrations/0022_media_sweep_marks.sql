-- migrate: without transaction
-- The sweep of unsent media (media/unsent_media_sweep.ts) looks at each media row once, when it
-- has become old enough: media_sweep keeps how far it has looked, when it last went through
-- every blob and every stored file (a pass it makes once a day), and which sweep runs now. media_sweep_blobs holds the
-- blobs whose media rows were deleted, written with the deletion: only those may have become
-- unnamed. The index lets the rows pass read what is new since the last, not the whole history
-- (the files pass has its own, 0021).
-- Built concurrently; safe to run again (see 0009).
create table if not exists media_sweep (
  -- one row
  only_row boolean primary key default true check (only_row),
  -- every media row created before this has been looked at: deleted, or carried by a message
  media_examined_before timestamptz,
  -- when the last pass over every unnamed blob and the stored files ended
  full_pass_at timestamptz,
  -- the stored files begun before this have been listed (a store that can tell when: PostgreSQL)
  files_listed_before timestamptz,
  -- the sweep under way, one at a time across instances: who runs it, and until when it may
  -- unless it renews that (an instance that died gives it up so)
  lease_holder text,
  lease_until timestamptz
);
insert into media_sweep default values on conflict do nothing;
create table if not exists media_sweep_blobs (
  sha256 bytea primary key
);
-- the media rows that became old enough since the last sweep, by index range
drop index concurrently if exists media_by_creation;
create index concurrently media_by_creation on media (created_at, id);
