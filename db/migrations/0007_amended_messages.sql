-- migrate: without transaction
-- Edits and deletions published while an instance was cut off from NATS are read again from
-- the store after it reconnects (ChatFeed.replayAmendments), by when they were made. Only
-- amended messages are in this index: an insert or a read mark adds nothing to it.
-- Built concurrently: a plain build would hold off every send while it scans. Safe to run again
-- (see 0009).
drop index concurrently if exists messages_amended;
create index concurrently messages_amended on messages (greatest(edited_at, deleted_at))
  where edited_at is not null or deleted_at is not null;
