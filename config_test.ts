import assert from "node:assert/strict";
import { ConfigError, loadConfig, redactConfig } from "./config.ts";

const valid = {
  DATABASE_URL: "postgres://chat:hunter2@db.internal:5432/chat",
  NATS_URL: "nats://user:natspass@nats.internal:4222",
  JWT_SECRET: "0123456789abcdef0123456789abcdef",
  GRPC_ADMIN_TOKEN: "admin-token-0123456789",
};

Deno.test("loadConfig names the variable of a wrong value in one line", () => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: "eighty" }, "PORT"],
    [{ DATABASE_URL: "mysql://db/chat" }, "DATABASE_URL"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ JWT_SECRET: "short" }, "JWT_SECRET"],
    [{ SHUTDOWN_TIMEOUT: "-1" }, "SHUTDOWN_TIMEOUT"],
  ];
  for (const [change, variable] of cases) {
    assert.throws(
      () => loadConfig({ ...valid, ...change }),
      (error: unknown) =>
        error instanceof ConfigError && error.message.includes(`${variable}:`) &&
        !error.message.includes("\n"),
      variable,
    );
  }
});

Deno.test("loadConfig refuses a duration longer than a timer can wait, which would fire at once", () => {
  // setTimeout takes a longer delay as 1 ms: a SIGTERM would exit 1 at once, sweeps run nonstop
  for (
    const variable of [
      "SHUTDOWN_TIMEOUT",
      "FEED_SWEEP_SECONDS",
      "MEDIA_UPLOAD_IDLE_SECONDS",
      "MEDIA_DOWNLOAD_IDLE_SECONDS",
      "WS_IDLE_TIMEOUT_SECONDS",
    ] as const
  ) {
    assert.throws(
      () => loadConfig({ ...valid, [variable]: "3000000" }),
      new RegExp(`^ConfigError: invalid configuration: ${variable}: must be at most`),
    );
    assert.equal(loadConfig({ ...valid, [variable]: String(24 * 86400) })[variable], 24 * 86400);
  }
});

Deno.test("loadConfig refuses a GRPC_TLS_RELOAD_SECONDS so short that reading the TLS files would take the event loop", () => {
  // a reading parses the pair and checks the key: about a millisecond of the event loop
  for (const value of ["0.001", "0.05"]) {
    assert.throws(
      () => loadConfig({ ...valid, GRPC_TLS_RELOAD_SECONDS: value }),
      /^ConfigError: invalid configuration: GRPC_TLS_RELOAD_SECONDS: must be at least 0\.1/,
      value,
    );
  }
  assert.equal(
    loadConfig({ ...valid, GRPC_TLS_RELOAD_SECONDS: "0.1" }).GRPC_TLS_RELOAD_SECONDS,
    0.1,
  );
});

Deno.test("loadConfig refuses a GRPC_PORT equal to PORT, which the start could not listen on", () => {
  assert.throws(
    () => loadConfig({ ...valid, PORT: "8000", GRPC_PORT: "8000" }),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.startsWith("invalid configuration: GRPC_PORT:") &&
      error.message.includes("PORT") && !error.message.includes("\n"),
  );
  // the same number written otherwise is the same port
  assert.throws(() => loadConfig({ ...valid, GRPC_PORT: "8000.0" }), /GRPC_PORT:/);
  // 0 asks the system for a free port, a different one each time; without the plane, no clash
  assert.equal(loadConfig({ ...valid, PORT: "0", GRPC_PORT: "0" }).GRPC_PORT, 0);
  assert.equal(loadConfig({ ...valid, GRPC_ENABLED: "0", GRPC_PORT: "8000" }).GRPC_PORT, 8000);
});

Deno.test("loadConfig counts JWT_SECRET in UTF-8 bytes, as the HS256 key is made of them", () => {
  // 16 characters of 2 bytes each: the 32 bytes the verifier takes
  assert.equal(loadConfig({ ...valid, JWT_SECRET: "é".repeat(16) }).JWT_SECRET, "é".repeat(16));
  assert.throws(
    () => loadConfig({ ...valid, JWT_SECRET: "é".repeat(15) }),
    /^ConfigError: invalid configuration: JWT_SECRET: must be at least 32 bytes/,
  );
});

Deno.test("loadConfig names the variable that is missing", () => {
  const { JWT_SECRET: _, ...noKey } = valid;
  assert.throws(() => loadConfig(noKey), /JWT_SECRET: set exactly one of/);
  const { GRPC_ADMIN_TOKEN: __, ...noToken } = valid;
  assert.throws(() => loadConfig(noToken), /GRPC_ADMIN_TOKEN: required/);
});

Deno.test("loadConfig refuses a GRPC_ADMIN_TOKEN that cannot travel in a Bearer header, without showing it", () => {
  const base = valid.GRPC_ADMIN_TOKEN;
  for (const token of [`admin ${base}`, `${base}\n`, `${base}\t`, `${base}é`, `${base}\x7f`]) {
    assert.throws(
      () => loadConfig({ ...valid, GRPC_ADMIN_TOKEN: token }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes("GRPC_ADMIN_TOKEN: must be printable ASCII without spaces") &&
        !error.message.includes(base),
      JSON.stringify(token),
    );
  }
  assert.equal(
    loadConfig({ ...valid, GRPC_ADMIN_TOKEN: `${base}~!` }).GRPC_ADMIN_TOKEN,
    `${base}~!`,
  );
});

Deno.test("loadConfig refuses a plain-http JWT_JWKS_URL except on a loopback host", () => {
  const { JWT_SECRET: _, ...noKey } = valid;
  for (
    const url of [
      "http://auth.shop.example/.well-known/jwks.json",
      "http://10.0.0.7:8080/jwks.json",
      "http://127.0.0.1.nip.io/jwks.json",
      "http://localhost.shop.example/jwks.json",
      "ftp://auth.shop.example/jwks.json",
    ]
  ) {
    assert.throws(
      () => loadConfig({ ...noKey, JWT_JWKS_URL: url }),
      (error: unknown) => error instanceof ConfigError && error.message.includes("JWT_JWKS_URL:"),
      url,
    );
  }
  for (
    const url of [
      "https://auth.shop.example/.well-known/jwks.json",
      "http://127.0.0.1:8080/jwks.json",
      "http://[::1]:8080/jwks.json",
      "http://localhost/jwks.json",
    ]
  ) {
    assert.equal(loadConfig({ ...noKey, JWT_JWKS_URL: url }).JWT_JWKS_URL, url);
  }
});

Deno.test("loadConfig refuses a JWT_JWKS_URL that is no URL in one line naming it, rather than throwing", () => {
  const { JWT_SECRET: _, ...noKey } = valid;
  for (const url of ["https://", "auth.shop.example/jwks.json", "https://auth shop/jwks.json"]) {
    assert.throws(
      () => loadConfig({ ...noKey, JWT_JWKS_URL: url }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith("invalid configuration: JWT_JWKS_URL:"),
      url,
    );
  }
});

Deno.test("loadConfig turns each ALLOWED_ORIGINS value into the origin a browser sends", () => {
  const config = loadConfig({
    ...valid,
    ALLOWED_ORIGINS:
      "https://app.example.com/, https://Shop.Example.com:443,http://localhost:5173,http://[::1]:8080,https://a_b.example.com",
  });
  assert.deepEqual(config.ALLOWED_ORIGINS, [
    "https://app.example.com",
    "https://shop.example.com",
    "http://localhost:5173",
    "http://[::1]:8080",
    "https://a_b.example.com",
  ]);
});

Deno.test("loadConfig refuses an ALLOWED_ORIGINS value that is no origin, naming it", () => {
  for (
    const value of [
      "*",
      "app.example.com",
      "localhost:5173",
      "null",
      "https://app.example.com/chat",
      "https://app.example.com/?embed=1",
      "https://app.example.com/#top",
      "https://user@app.example.com",
      "file:///home/app/index.html",
      // a placeholder the deployment left unexpanded
      "https://${DOMAIN}",
      "https://app.${DOMAIN}:8443",
    ]
  ) {
    assert.throws(
      () => loadConfig({ ...valid, ALLOWED_ORIGINS: `https://ok.example.com,${value}` }),
      (error: unknown) =>
        error instanceof ConfigError && error.message.includes("ALLOWED_ORIGINS:") &&
        error.message.includes(JSON.stringify(value)),
      value,
    );
  }
});

Deno.test("loadConfig refuses an ALLOWED_ORIGINS that names no origin, rather than allowing every one", () => {
  // set but empty once split, as `${WEB_ORIGIN},${ADMIN_ORIGIN}` is with both unset: an empty
  // list lets every origin in, the opposite of what setting it asked for
  for (const value of [",", " , ", ",,,", " "]) {
    assert.throws(
      () => loadConfig({ ...valid, ALLOWED_ORIGINS: value }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.startsWith("invalid configuration: ALLOWED_ORIGINS:"),
      JSON.stringify(value),
    );
  }
  // unset, or empty (as unset): any origin, as documented
  assert.deepEqual(loadConfig(valid).ALLOWED_ORIGINS, []);
  assert.deepEqual(loadConfig({ ...valid, ALLOWED_ORIGINS: "" }).ALLOWED_ORIGINS, []);
});

Deno.test("loadConfig refuses a NATS_URL whose servers have different credentials, naming it without them", () => {
  // the NATS client has one set of credentials for all its servers: found only at the connect,
  // after the migrations, such a value ended the start with 1, to be started again and again
  assert.throws(
    () => loadConfig({ ...valid, NATS_URL: "nats://a:first@n1:4222,nats://b:second@n2:4222" }),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message ===
        "invalid configuration: NATS_URL: every server must have the same credentials",
  );
  assert.equal(
    loadConfig({ ...valid, NATS_URL: "nats://a:same@n1:4222, nats://a:same@n2:4222" }).NATS_URL,
    "nats://a:same@n1:4222, nats://a:same@n2:4222",
  );
});

Deno.test("loadConfig refuses a NATS_URL the NATS client cannot connect to, naming it without its secrets", () => {
  // found only at the connect, after the migrations, each ended the start with 1, to be started
  // again and again, in a line that did not name NATS_URL
  for (
    const value of [
      "nats://s3cret@n1:99999", // no port
      "nats://s3cret@n1:42x2",
      "http://s3cret@n1:4222", // a scheme NATS does not take: the client would drop it
      "ws://n1:4222", // the WebSocket transport, which this client has not
      "nats://:4222", // no host
      "nats://s3cret@",
      "nats://n1:4222,tls://",
      " , ", // no server at all
    ]
  ) {
    assert.throws(
      () => loadConfig({ ...valid, NATS_URL: value }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /^invalid configuration: NATS_URL: [^\n]+$/.test(error.message) &&
        !error.message.includes("s3cret"),
      value,
    );
  }
  for (const value of ["n1:4222", "n1", "[::1]:4222", "tls://n1", "nats://a:b@n1:4222, n2:4223"]) {
    assert.equal(loadConfig({ ...valid, NATS_URL: value }).NATS_URL, value);
  }
});

Deno.test("loadConfig takes an empty value as unset", () => {
  const config = loadConfig({ ...valid, PORT: "", LOG_LEVEL: "" });
  assert.equal(config.PORT, 8000);
  assert.equal(config.LOG_LEVEL, "info");
});

Deno.test("redactConfig masks secrets and the passwords in URLs", () => {
  const shown = JSON.stringify(redactConfig(loadConfig(valid)));
  for (const secret of ["hunter2", "natspass", valid.JWT_SECRET, valid.GRPC_ADMIN_TOKEN]) {
    assert.ok(!shown.includes(secret), `${secret} leaked: ${shown}`);
  }
  assert.match(shown, /db\.internal:5432/);
  assert.match(shown, /"JWT_SECRET":"\[redacted\]"/);
});

Deno.test("redactConfig masks a NATS token given as the user, in every URL of a list", () => {
  const config = loadConfig({
    ...valid,
    NATS_URL: "nats://s3cr3t-token@nats-a:4222,nats://s3cr3t-token@nats-b:4222",
  });
  const shown = String(redactConfig(config).NATS_URL);
  assert.ok(!shown.includes("s3cr3t-token"), shown);
  assert.match(shown, /nats-a:4222.*nats-b:4222/);
});

Deno.test("redactConfig masks the password of a JWT_JWKS_URL, which fetch sends as Basic auth", () => {
  const { JWT_SECRET: _, ...rest } = valid;
  const config = loadConfig({ ...rest, JWT_JWKS_URL: "https://jwks:idp-pass@idp.internal/jwks" });
  const shown = String(redactConfig(config).JWT_JWKS_URL);
  assert.ok(!shown.includes("idp-pass"), shown);
  assert.match(shown, /idp\.internal\/jwks/);
});
