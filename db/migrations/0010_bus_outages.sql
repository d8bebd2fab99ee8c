-- The NATS outages of running instances: each is recorded when an instance loses its
-- connection and removed once its resync request went out. One left behind belongs to a
-- process that ended while cut off (a restart, a crash, a deploy): what it published meanwhile
-- never reached the other instances, so the next instance to start asks for the resync instead.
create table bus_outages (
  instance_id uuid primary key,
  -- from when payloads may have been lost (the database's clock, as every instance reads it)
  lost_since timestamptz not null
);
