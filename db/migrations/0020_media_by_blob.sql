-- migrate: without transaction
-- The sweep of unsent media (media/unsent_media_sweep.ts) deletes a blob once no media row names
-- it: it asks that of every catalogue row, and PostgreSQL asks it again of each one deleted (the
-- foreign key from media). Without this index each question reads all of `media`.
-- Built concurrently; safe to run again (see 0009).
drop index concurrently if exists media_by_blob;
create index concurrently media_by_blob on media (sha256);
