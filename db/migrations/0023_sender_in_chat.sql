-- Whether a user may send in a chat: its customer, its vendor, or a member of its vendor. The
-- message writer's batch statement asks it of every message (db/insert_batch.ts), so that a
-- vendor member removed meanwhile is refused at the database and not only by the sockets'
-- memberships, which hear of a removal over the bus. In plpgsql, which the planner does not look
-- into: written inline, the lookups raised the estimate of the statement's generic plan above its
-- custom plans', and PostgreSQL then planned every batch anew (0.5 ms each, most of a message's
-- cost at 1,000 messages/s). Both lookups are by primary key.
create or replace function sender_in_chat(chat uuid, sender text) returns boolean
language plpgsql stable as $$
begin
  return exists (
    select 1 from chats c
    where c.id = chat
      and (sender = c.user_id or sender = c.vendor_id
           or exists (select 1 from vendor_members m
                      where m.vendor_id = c.vendor_id and m.user_id = sender)));
end
$$;
