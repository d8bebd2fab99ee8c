-- migrate: without transaction
-- Every instance's sweep looks up the vendor members added in its last few seconds, for an
-- addition whose event never reached the other instances (its instance ended between the commit
-- and the publish). Built concurrently; safe to run again (see 0009).
drop index concurrently if exists vendor_members_by_creation;
create index concurrently vendor_members_by_creation on vendor_members (created_at);
