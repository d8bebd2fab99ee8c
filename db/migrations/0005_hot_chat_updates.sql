-- migrate: without transaction
-- Every batch of messages updates its chats' rows (last_seq, updated_at, unread counters).
-- PostgreSQL can keep such an update on the row's page without touching any index (a HOT
-- update) only when no indexed column changes; the lookup indexes by participant named
-- updated_at, so each batch wrote a new entry per chat into every index of the table. The chat
-- list never used that order (it gathers a user's chats from three sources, then sorts them),
-- so the indexes keep only what the lookups need: participant and id, which never change.
--
-- Built concurrently: every batch updates chats, and a plain drop or build would hold off every
-- send while it waits and scans. Each new index is built beside the old one, which serves the
-- same lookups until it is dropped. Safe to run again: a build that failed leaves an invalid
-- index, dropped first.
drop index concurrently if exists chats_by_user_next;
create index concurrently chats_by_user_next on chats (user_id, id);
drop index concurrently if exists chats_by_user;
alter index chats_by_user_next rename to chats_by_user;
drop index concurrently if exists chats_by_vendor_next;
create index concurrently chats_by_vendor_next on chats (vendor_id, id);
drop index concurrently if exists chats_by_vendor;
alter index chats_by_vendor_next rename to chats_by_vendor;

-- Room on each page for the next version of a row, so that updates stay HOT.
alter table chats set (fillfactor = 80);
