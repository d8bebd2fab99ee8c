-- Read marks published while an instance was cut off from NATS are read again from the store
-- after it reconnects (chat/amendment_replay.ts), as `message_read` events: each needs who read
-- the message. Nullable without a default: no rewrite of the table.
alter table messages add column read_by text;
