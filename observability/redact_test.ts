import assert from "node:assert/strict";
import { redactUrls, redactUrlsIn } from "./redact.ts";

Deno.test("redactUrls masks the password, and with tokenAsUser a lone user", () => {
  const nats = { tokenAsUser: true };
  assert.equal(
    redactUrls("nats://alice:s3cret@n1:4222, nats://t0ken@n2:4222", nats),
    "nats://alice:redacted@n1:4222,nats://redacted@n2:4222",
  );
  assert.equal(
    redactUrls("postgres://chat:s3cret@db:5432/chat", { tokenAsUser: false }),
    "postgres://chat:redacted@db:5432/chat",
  );
});

Deno.test("redactUrls masks the credentials of a server given without its scheme", () => {
  // `alice:` reads as a scheme, and what follows it as an opaque path with no host
  const nats = { tokenAsUser: true };
  assert.equal(redactUrls("alice:s3cret@n1:4222", nats), "redacted@n1:4222");
  assert.equal(redactUrls("alice:p@ss@n1:4222", nats), "redacted@n1:4222");
  assert.equal(
    redactUrls("nats://n1:4222, alice:s3cret@n2:4222", nats),
    "nats://n1:4222,redacted@n2:4222",
  );
  assert.equal(redactUrls("localhost:4222", nats), "localhost:4222");
});

Deno.test("redactUrls shows a server given as a bare host or address, masking what precedes an @", () => {
  // NATS takes `host:port` and `127.0.0.1:4222`, which no URL parser reads: the operator must
  // see which server was meant, in the start line and in "cannot connect to NATS at ..."
  const nats = { tokenAsUser: true };
  assert.equal(redactUrls("127.0.0.1:4222", nats), "127.0.0.1:4222");
  assert.equal(redactUrls("nats-1", nats), "nats-1");
  assert.equal(redactUrls("t0ken@127.0.0.1:4222", nats), "redacted@127.0.0.1:4222");
  assert.equal(
    redactUrls("nats://n1:4222, [::1]:4222", nats),
    "nats://n1:4222,[::1]:4222",
  );
});

Deno.test("redactUrls masks query parameters that carry a credential, and shows the rest", () => {
  const plain = { tokenAsUser: false };
  assert.equal(
    redactUrls("https://idp.example/jwks?api_key=s3cret&tenant=acme&X-Amz-Signature=abc", plain),
    "https://idp.example/jwks?api_key=redacted&tenant=acme&X-Amz-Signature=redacted",
  );
  assert.equal(
    redactUrls("postgres://chat@db/chat?sslmode=require&password=s3cret", plain),
    "postgres://chat@db/chat?sslmode=require&password=redacted",
  );
  assert.equal(
    redactUrls("https://idp.example/jwks?access_token=s3cret&sig=x&code=y", plain),
    "https://idp.example/jwks?access_token=redacted&sig=redacted&code=redacted",
  );
});

Deno.test("redactUrlsIn masks the credentials of each URL a text quotes, and leaves the rest as written", () => {
  assert.equal(
    redactUrlsIn(
      "error sending request for url (https://idp.example/jwks?api_key=k1&v=2): refused; " +
        "then nats://t0ken@nats:4222 and postgres://chat:pw@db/chat, not https://example.com",
    ),
    "error sending request for url (https://idp.example/jwks?api_key=redacted&v=2): refused; " +
      "then nats://redacted@nats:4222 and postgres://chat:redacted@db/chat, not https://example.com",
  );
});

Deno.test("redactUrlsIn reads a long text without a URL in time in proportion to it", () => {
  // every `.` of `a.a.a...` starts a word, and each start scanned the rest of the text for a
  // `://`: quadratic, a 200 KB error message held the process for seconds (1 MB: minutes)
  const text = "a.".repeat(100_000);
  const started = performance.now();
  assert.equal(redactUrlsIn(text), text);
  const tookMs = performance.now() - started;
  assert.ok(tookMs < 2_000, `took ${Math.round(tookMs)} ms`);
});
