import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";
import {
  countFreeDescriptors,
  DEFAULT_MAX_SOCKETS,
  descriptorReserve,
  descriptorsToCount,
  socketLimit,
} from "./open_files.ts";
import { MAX_CONNECTIONS } from "./grpc/connection_cap.ts";
import { createCertificate } from "./tests/support/tls_certificates.ts";

const env = {
  DATABASE_URL: "postgres://chat@db.internal:5432/chat",
  NATS_URL: "nats://nats.internal:4222",
  JWT_SECRET: "0123456789abcdef0123456789abcdef",
  GRPC_ADMIN_TOKEN: "admin-token-0123456789",
};

Deno.test("descriptorReserve grows with the database pool, a NATS media store and the gRPC TLS front", () => {
  const reserve = descriptorReserve(loadConfig(env));
  assert.equal(descriptorReserve(loadConfig({ ...env, DATABASE_POOL_SIZE: "50" })), reserve + 30);
  assert.equal(descriptorReserve(loadConfig({ ...env, MEDIA_BACKEND: "nats" })), reserve + 1);
  assert.ok(descriptorReserve(loadConfig({ ...env, GRPC_ENABLED: "0" })) < reserve);
});

Deno.test("descriptorReserve keeps, for the gRPC TLS front, two listeners more and four descriptors more per admin connection", async () => {
  const { cert, key } = await createCertificate();
  const tls = descriptorReserve(loadConfig({ ...env, GRPC_TLS_CERT: cert, GRPC_TLS_KEY: key }));
  // the public TCP port and the TLS one on loopback; per connection, the public one, both ends
  // of its relay to the TLS port, and both ends of the TLS side's relay to grpc-js
  assert.equal(tls - descriptorReserve(loadConfig(env)), 2 + MAX_CONNECTIONS * 4);
});

Deno.test("socketLimit without WS_MAX_SOCKETS leaves the reserve free, at least 1 socket and at most the default", () => {
  const config = loadConfig(env);
  const reserve = descriptorReserve(config);
  assert.deepEqual(socketLimit(config, 1000), {
    max: 1000 - reserve,
    allowed: 1000 - reserve,
    aboveOpenFileLimit: false,
    reserve,
    derived: true,
  });
  assert.equal(socketLimit(config, descriptorsToCount(config)).max, DEFAULT_MAX_SOCKETS);
  const noRoom = socketLimit(config, reserve - 10);
  assert.equal(noRoom.max, 1);
  assert.equal(noRoom.aboveOpenFileLimit, true);
  assert.deepEqual(socketLimit(config, undefined), {
    max: DEFAULT_MAX_SOCKETS,
    allowed: undefined,
    aboveOpenFileLimit: false,
    reserve,
    derived: false,
  });
});

Deno.test("socketLimit keeps a WS_MAX_SOCKETS set above what the limit allows, and says what it allows", () => {
  const config = loadConfig({ ...env, WS_MAX_SOCKETS: "5000" });
  const limit = socketLimit(config, 1000);
  assert.equal(limit.max, 5000);
  assert.equal(limit.allowed, 1000 - limit.reserve);
  assert.equal(limit.aboveOpenFileLimit, true);
  assert.equal(limit.derived, false);
});

Deno.test("socketLimit does not warn of a WS_MAX_SOCKETS above what was counted when every descriptor counted was free", () => {
  const config = loadConfig({ ...env, WS_MAX_SOCKETS: "1000000" });
  const counted = descriptorsToCount(config);
  assert.ok(counted < 1_000_000, "the count stops short of a million sockets");
  assert.equal(socketLimit(config, counted).aboveOpenFileLimit, false);
  assert.equal(socketLimit(config, counted - 1).aboveOpenFileLimit, true);
});

Deno.test("countFreeDescriptors counts up to what it is asked for and leaves nothing open", () => {
  // the test's own sanitizer fails it if a descriptor stays open
  assert.equal(countFreeDescriptors(50), 50);
});
