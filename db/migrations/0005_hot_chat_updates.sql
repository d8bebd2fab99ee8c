-- Every batch of messages updates its chats' rows (last_seq, updated_at, unread counters).
-- PostgreSQL can keep such an update on the row's page without touching any index (a HOT
-- update) only when no indexed column changes; the lookup indexes by participant named
-- updated_at, so each batch wrote a new entry per chat into every index of the table. The chat
-- list never used that order (it gathers a user's chats from three sources, then sorts them),
-- so the indexes keep only what the lookups need: participant and id, which never change.
drop index chats_by_user;
drop index chats_by_vendor;
create index chats_by_user on chats (user_id, id);
create index chats_by_vendor on chats (vendor_id, id);

-- Room on each page for the next version of a row, so that updates stay HOT.
alter table chats set (fillfactor = 80);
