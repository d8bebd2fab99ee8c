import assert from "node:assert/strict";
import { natsServers } from "./nats_servers.ts";

Deno.test("natsServers passes URLs without credentials as they are", () => {
  assert.deepEqual(natsServers("nats://a:4222, nats://b:4222"), {
    servers: ["nats://a:4222", "nats://b:4222"],
  });
  assert.deepEqual(natsServers("127.0.0.1:4222"), { servers: ["127.0.0.1:4222"] });
});

Deno.test("natsServers takes a user and password, or a token, out of the URLs into options", () => {
  assert.deepEqual(
    natsServers("nats://chat:p%40ss%3Aword@a:4222,nats://chat:p%40ss%3Aword@b:4222"),
    {
      servers: ["nats://a:4222", "nats://b:4222"],
      user: "chat",
      pass: "p@ss:word",
    },
  );
  assert.deepEqual(natsServers("tls://s3cr3t-token@nats.internal:4222"), {
    servers: ["tls://nats.internal:4222"],
    token: "s3cr3t-token",
    tls: {},
  });
  // a server without credentials beside one with them connects with the same ones
  assert.deepEqual(natsServers("nats://t0k@a:4222,nats://b:4222"), {
    servers: ["nats://a:4222", "nats://b:4222"],
    token: "t0k",
  });
});

Deno.test("natsServers refuses servers with different credentials, without showing them", () => {
  assert.throws(
    () => natsServers("nats://u:one@a:4222,nats://u:two@b:4222"),
    (error: Error) => /same credentials/.test(error.message) && !/one|two/.test(error.message),
  );
});

Deno.test("natsServers takes the credentials of a server written without its scheme", () => {
  assert.deepEqual(natsServers("chat:s3cret@n1:4222"), {
    servers: ["nats://n1:4222"],
    user: "chat",
    pass: "s3cret",
  });
  assert.deepEqual(natsServers("t0ken@n1:4222, nats://t0ken@n2:4222"), {
    servers: ["nats://n1:4222", "nats://n2:4222"],
    token: "t0ken",
  });
});

Deno.test("natsServers requires TLS of tls:// servers, and refuses a list that mixes them with others", () => {
  assert.deepEqual(natsServers("tls://a:4222, tls://b:4222"), {
    servers: ["tls://a:4222", "tls://b:4222"],
    tls: {},
  });
  for (const mixed of ["tls://a:4222,nats://b:4222", "b:4222, tls://u:s3cret@a:4222"]) {
    assert.throws(
      () => natsServers(mixed),
      (error: Error) => /tls:\/\//.test(error.message) && !/s3cret/.test(error.message),
    );
  }
});

Deno.test("natsServers refuses port 0, as any port outside 1-65535", () => {
  for (const value of ["nats://a:0", "a:0", "nats://a:4222, b:0"]) {
    assert.throws(() => natsServers(value), /port of 1-65535/, value);
  }
  assert.deepEqual(natsServers("nats://a:1").servers, ["nats://a:1"]);
});
