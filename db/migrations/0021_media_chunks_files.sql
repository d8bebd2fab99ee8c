-- migrate: without transaction
-- The sweep of files no catalogue row names (media/unsent_media_sweep.ts) pages through every
-- complete file of media_chunks by key: one entry per file (its first chunk), with the time its
-- writing began, read from the index alone. Without it each page reads the table's chunk rows.
-- Built concurrently; safe to run again (see 0009).
drop index concurrently if exists media_chunks_files;
create index concurrently media_chunks_files on media_chunks (blob_key, created_at)
  where byte_offset = 0 and blob_key not like 'upload:%';
