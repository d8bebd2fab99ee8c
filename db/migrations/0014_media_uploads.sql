-- migrate: without transaction
-- The media store's sweep looks for the uploads of instances killed mid-upload: the few rows of
-- media_chunks under 'upload:<uuid>' keys, among every file's chunks. Built concurrently; safe
-- to run again (see 0009).
drop index concurrently if exists media_chunks_uploads;
create index concurrently media_chunks_uploads on media_chunks (blob_key, created_at)
  where blob_key like 'upload:%';
