-- A new message's search entries go to the GIN index's pending list (fastupdate), which is
-- merged into the index proper once it outgrows gin_pending_list_limit, by whichever insert
-- finds it full, inside that insert's statement. At the default 4 MB a merge took 80 - 125 ms
-- every few seconds under load: the group-commit batch holding that insert, and every message
-- queued behind it, waited that long (the longest deliveries at 3,000 messages /s). A small
-- list is merged as often as it fills, a few milliseconds each time; autovacuum, where it runs,
-- still merges it between.
alter index messages_search set (gin_pending_list_limit = 256);
