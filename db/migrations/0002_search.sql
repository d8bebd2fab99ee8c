-- Full-text search over message content (SearchMessages), and the order the admin plane lists
-- chats in.

-- 'simple' lower-cases and splits words but neither stems nor drops stop words. The marketplace
-- is multilingual: an English (or any one-language) configuration would stem German, Turkish or
-- Arabic text into wrong lexemes and silently drop words that are stop words only in English.
-- With 'simple', a word matches as written, in every language; queries use the same
-- configuration, so both sides agree. Generated and stored, so every writer (the service, bulk
-- loads, other tools) keeps it right and ranking reads it without re-parsing the content.
alter table messages
  add column search_vector tsvector
  generated always as (to_tsvector('simple', coalesce(content, ''))) stored;

-- GIN: the index for "which rows contain these lexemes". fastupdate (the default) batches the
-- posting-list inserts of new messages, so writes stay cheap.
create index messages_search on messages using gin (search_vector);

-- ListChats pages newest first by (created_at, id), which never changes for a chat (updated_at
-- does with every message, and a moving key would skip or repeat chats between pages).
create index chats_by_created on chats (created_at desc, id desc);
