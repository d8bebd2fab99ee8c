-- migrate: without transaction
-- ListChats pages a customer's or a vendor's chats newest first by (created_at, id). The lookup
-- indexes by participant and id could only give all of a participant's chats, to be sorted; so
-- PostgreSQL walked every chat newest first instead, dropping the others', which reads the whole
-- table when the participant's chats are the oldest. With created_at after the participant, a
-- page is read in order, its cursor's row comparison part of the index condition. created_at
-- never changes, so updates of a chat stay HOT (see 0005), and the lookups by participant the
-- chat list makes are served as before.
--
-- Built concurrently beside the old index, which serves until it is dropped; safe to run again
-- (see 0005).
drop index concurrently if exists chats_by_user_next;
create index concurrently chats_by_user_next on chats (user_id, created_at desc, id desc);
drop index concurrently if exists chats_by_user;
alter index chats_by_user_next rename to chats_by_user;
drop index concurrently if exists chats_by_vendor_next;
create index concurrently chats_by_vendor_next on chats (vendor_id, created_at desc, id desc);
drop index concurrently if exists chats_by_vendor;
alter index chats_by_vendor_next rename to chats_by_vendor;
