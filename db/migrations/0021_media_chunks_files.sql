-- migrate: without transaction
-- The sweep of files no catalogue row names (media/unsent_media_sweep.ts) lists the complete files
-- of media_chunks begun since its last such pass: one entry per file (its first chunk), by when
-- its writing began, read from the index alone. Without it each pass reads every chunk row.
-- Built concurrently; safe to run again (see 0009).
drop index concurrently if exists media_chunks_files_by_creation;
create index concurrently media_chunks_files_by_creation on media_chunks (created_at, blob_key)
  where byte_offset = 0 and blob_key not like 'upload:%';
