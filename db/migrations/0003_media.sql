-- migrate: without transaction
-- Media bytes in PostgreSQL (MEDIA_BACKEND=postgres), in chunk rows: see
-- media/postgres_media_store.ts for why not one bytea per file. media_blobs stays the catalogue
-- of files (type and size) for either backend; its `data` column is not used.

create table if not exists media_chunks (
  -- the file's SHA-256 in hex once complete; 'upload:<uuid>' while it is being written
  blob_key text not null,
  byte_offset bigint not null check (byte_offset >= 0),
  data bytea not null,
  created_at timestamptz not null default now(),
  -- a range read finds the chunk holding a byte by (blob_key, byte_offset <= x) backwards
  primary key (blob_key, byte_offset)
);
-- images, sound and video are compressed already: store chunks as they are, so substring()
-- reads only the TOAST pages it needs
alter table media_chunks alter column data set storage external;

-- who may fetch a file depends on the messages that carry it. Built concurrently: a plain build
-- would hold off every send while it scans. Safe to run again (see 0009).
drop index concurrently if exists messages_by_media;
create index concurrently messages_by_media on messages (media_id) where media_id is not null;
