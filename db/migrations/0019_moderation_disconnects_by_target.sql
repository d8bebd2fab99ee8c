-- migrate: without transaction
-- A socket that opens asks for its user's sanctions (sanctionsOf), among them the newest
-- disconnect of that user. Found down the target's index (0016), it was the newest action of
-- any kind against the user that was a disconnect: for a spammer whose thousands of messages
-- moderators deleted, every connect read each of those deletions. Only disconnects are in this
-- index, so the newest is its first entry for the user; other actions add nothing to it.
--
-- Built concurrently; safe to run again (see 0009).
drop index concurrently if exists moderation_actions_disconnects;
create index concurrently moderation_actions_disconnects
  on moderation_actions (target_user_id, created_at desc) where action = 'disconnect_user';
