-- Read marks published while an instance was cut off from NATS are read again from the store
-- after it reconnects (chat/outage_replay.ts), as `message_read` events: each needs who read
-- the message, and a way to find a chat's messages read within the outage. A message is in the
-- index only once read (an insert adds nothing to it); read marks already update every index of
-- the row (is_read is in the unread index's predicate), so this adds one entry to that update.
alter table messages add column read_by text;
create index messages_read on messages (chat_id, read_at) where read_at is not null;
