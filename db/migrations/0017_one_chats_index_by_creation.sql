-- migrate: without transaction
-- chats_by_creation (created_at), made for the sweep's look-up of the chats created in its last
-- few seconds (0011), repeats the first column of chats_by_created (created_at desc, id desc,
-- 0002), which ListChats pages through and which serves the sweep's window as well, read
-- backwards in the sweep's order (created_at, id). Every new chat wrote an entry into both.
--
-- Dropped concurrently: a plain drop would hold off every new chat while it waits for the
-- table's lock. Safe to run again.
drop index concurrently if exists chats_by_creation;
