-- migrate: without transaction
-- Every instance's sweep looks up the chats created in its last few seconds, for a new chat whose
-- event never reached the other instances (its instance ended between the commit and the
-- publish). Built concurrently: a plain build would hold off every new chat while it scans. Safe
-- to run again: a concurrent build that failed leaves an invalid index, dropped first.
drop index concurrently if exists chats_by_creation;
create index concurrently chats_by_creation on chats (created_at);
