-- migrate: without transaction
-- The replay after a NATS outage finds a chat's messages read within it by this index. A
-- message is in it only once read (an insert adds nothing to it); read marks already update
-- every index of the row (is_read is in the unread index's predicate), so this adds one entry
-- to that update. Built concurrently: on a large table a plain build would hold off every send
-- while it scans. Safe to run again: a concurrent build that failed leaves an invalid index,
-- dropped first.
drop index concurrently if exists messages_read;
create index concurrently messages_read on messages (chat_id, read_at) where read_at is not null;
