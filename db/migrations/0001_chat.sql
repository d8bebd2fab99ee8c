-- Chats, vendor members, messages, media, bans and the moderation audit log.

create table chats (
  id uuid primary key default gen_random_uuid(),
  user_id text not null,
  vendor_id text not null,
  -- seq of the newest message; bumped under the chat's row lock, so seq has no gaps
  last_seq integer not null default 0,
  -- unread messages addressed to each side, kept in step with every write
  customer_unread integer not null default 0 check (customer_unread >= 0),
  vendor_unread integer not null default 0 check (vendor_unread >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint chats_pair unique (user_id, vendor_id),
  constraint chats_two_people check (user_id <> vendor_id)
);
-- chat lists by participant and last activity
create index chats_by_user on chats (user_id, updated_at desc, id desc);
create index chats_by_vendor on chats (vendor_id, updated_at desc, id desc);

create table vendor_members (
  vendor_id text not null,
  user_id text not null,
  role text not null check (role in ('owner', 'agent')),
  created_at timestamptz not null default now(),
  primary key (vendor_id, user_id)
);
create index vendor_members_by_user on vendor_members (user_id);

-- one row per distinct file (content-addressed); media rows point at it
create table media_blobs (
  sha256 bytea primary key,
  mime_type text not null,
  size bigint not null,
  data bytea,
  created_at timestamptz not null default now()
);

create table media (
  id uuid primary key default gen_random_uuid(),
  chat_id uuid not null references chats (id),
  uploader_id text not null,
  media_type text not null check (media_type in ('image', 'audio', 'video')),
  sha256 bytea not null references media_blobs (sha256),
  created_at timestamptz not null default now()
);
create index media_by_chat on media (chat_id);

create table messages (
  id uuid primary key default gen_random_uuid(),
  chat_id uuid not null references chats (id),
  seq integer not null,
  sender_id text not null,
  sender_side text not null check (sender_side in ('customer', 'vendor')),
  receiver_id text not null,
  media_type text not null check (media_type in ('text', 'image', 'audio', 'video')),
  content text,
  media_id uuid references media (id),
  client_id text,
  is_read boolean not null default false,
  read_at timestamptz,
  edited_at timestamptz,
  deleted_at timestamptz,
  deleted_by text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- history by (chat, seq)
  constraint messages_chat_seq unique (chat_id, seq),
  -- a retried send never makes a second message
  constraint messages_client_id unique (chat_id, sender_id, client_id)
);
-- unread by receiver side: the newest unread of one side, without scanning read history
create index messages_unread on messages (chat_id, sender_side, seq desc)
  where not is_read and deleted_at is null;

create table bans (
  user_id text primary key,
  moderator_id text not null,
  reason text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz
);

create table moderation_actions (
  id uuid primary key default gen_random_uuid(),
  action text not null,
  moderator_id text not null,
  target_user_id text,
  target_message_id uuid,
  reason text not null,
  created_at timestamptz not null default now()
);
create index moderation_actions_by_time on moderation_actions (created_at desc, id desc);
create index moderation_actions_by_moderator on moderation_actions (moderator_id, created_at desc);
create index moderation_actions_by_target on moderation_actions (target_user_id, created_at desc);
