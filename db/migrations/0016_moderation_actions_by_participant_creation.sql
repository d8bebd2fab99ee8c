-- migrate: without transaction
-- ListModerationActions pages a moderator's or a target's actions newest first by
-- (created_at, id). The lookup indexes by participant and created_at alone could not take the
-- cursor's row comparison as their condition nor give id's order: under a generic plan every
-- action of the participant older than the cursor was read and sorted for each page, and a custom
-- plan could walk all actions newest first from the cursor, dropping the others'. With id after
-- created_at, a page is read in order, its cursor's row comparison part of the index condition.
-- The newest disconnect of a user (sanctionsOf) is still read down the target's index.
--
-- Built concurrently beside the old index, which serves until it is dropped; safe to run again
-- (see 0005).
drop index concurrently if exists moderation_actions_by_moderator_next;
create index concurrently moderation_actions_by_moderator_next
  on moderation_actions (moderator_id, created_at desc, id desc);
drop index concurrently if exists moderation_actions_by_moderator;
alter index moderation_actions_by_moderator_next rename to moderation_actions_by_moderator;
drop index concurrently if exists moderation_actions_by_target_next;
create index concurrently moderation_actions_by_target_next
  on moderation_actions (target_user_id, created_at desc, id desc);
drop index concurrently if exists moderation_actions_by_target;
alter index moderation_actions_by_target_next rename to moderation_actions_by_target;
