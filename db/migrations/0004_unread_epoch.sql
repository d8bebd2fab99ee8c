-- Bumped by every change to which messages are unread other than a new message (a read, a
-- delete, an edit). With last_seq it tells a writer whether its cached unread list of a chat
-- is still exact, so a new message does not re-read the list.
alter table chats add column unread_epoch integer not null default 0;
