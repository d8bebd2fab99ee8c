import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, chromiumFor } from "./support/chromium.ts";
import { chatWithImage, fixture } from "./support/media.ts";
import { startCluster, type TestCluster } from "./support/service.ts";

// CORS of /v1/media over real HTTP, with the headers a browser sends for a web app on another
// origin that uploads and fetches with `Authorization: Bearer`.

const SHOP = "https://shop.example";
const chromiumPath = chromiumFor("tests/media_cors_test.ts (its browser test)");
const EVIL = "https://evil.example";

/** A browser's preflight from `origin` of `method` with `headers` on `path`. */
async function preflight(cluster: TestCluster, path: string, origin: string, method: string) {
  const response = await fetch(`${cluster.main.httpUrl}${path}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": method,
      "access-control-request-headers": "authorization,content-type",
    },
  });
  await response.body?.cancel();
  return response;
}

/** A request as `userId` from `origin`; the body is read whole. */
async function fromOrigin(
  cluster: TestCluster,
  path: string,
  origin: string,
  init: { method?: string; body?: BodyInit; headers?: Record<string, string>; user?: string } = {},
) {
  const response = await fetch(`${cluster.main.httpUrl}${path}`, {
    method: init.method ?? "GET",
    ...(init.body === undefined ? {} : { body: init.body }),
    headers: {
      origin,
      authorization: `Bearer ${await cluster.token(init.user ?? "alice")}`,
      ...init.headers,
    },
  });
  await response.body?.cancel();
  return response;
}

const list = (value: string | null) => (value ?? "").split(",").map((item) => item.trim());

/** A response an allowed web app can read: its origin named, the headers it needs exposed. */
function assertReadableBy(response: Response, origin: string) {
  const headers = response.headers;
  assert.equal(headers.get("access-control-allow-origin"), origin, `${response.status}`);
  assert.ok(list(headers.get("vary")).includes("Origin"));
  const exposed = list(headers.get("access-control-expose-headers"));
  for (const name of ["location", "etag", "content-range", "retry-after", "content-length"]) {
    assert.ok(exposed.includes(name), `${name} exposed: ${exposed}`);
  }
  assert.ok(exposed.includes("accept-ranges"));
  assert.equal(headers.get("access-control-allow-credentials"), null, "no cookies are used");
}

function assertNoCors(response: Response) {
  for (const [name] of response.headers) {
    assert.ok(!name.startsWith("access-control-"), `${name} on ${response.status}`);
  }
}

Deno.test("a preflight from an allowed origin on /v1/media and /v1/media/{id} is 204 naming the origin, methods and headers", async () => {
  await using cluster = await startCluster({ nats: false, env: { ALLOWED_ORIGINS: SHOP } });
  const media = `/v1/media/${crypto.randomUUID()}`;
  for (
    const [path, method, methods] of [["/v1/media", "POST", ["POST"]], [media, "GET", [
      "GET",
      "HEAD",
    ]]] as const
  ) {
    const response = await preflight(cluster, path, SHOP, method);
    assert.equal(response.status, 204, path);
    assert.equal(response.headers.get("access-control-allow-origin"), SHOP);
    assert.ok(list(response.headers.get("vary")).includes("Origin"));
    assert.deepEqual(list(response.headers.get("access-control-allow-methods")), methods);
    assert.deepEqual(list(response.headers.get("access-control-allow-headers")), [
      "authorization",
      "content-type",
      "range",
      "if-none-match",
      "if-range",
    ]);
    assert.ok(Number(response.headers.get("access-control-max-age")) > 0);
    assert.equal(response.headers.get("access-control-allow-credentials"), null);
  }
  const evil = await preflight(cluster, "/v1/media", EVIL, "POST");
  assert.equal(evil.status, 403);
  assertNoCors(evil);
});

Deno.test("answers to an allowed origin are readable, errors included; a disallowed origin gets no CORS headers", async () => {
  await using cluster = await startCluster({
    nats: false,
    env: { ALLOWED_ORIGINS: SHOP, MEDIA_RATE_PER_SECOND: "1", MEDIA_RATE_BURST: "8" },
  });
  const { chat, mediaUrl } = await chatWithImage(cluster);
  const png = await fixture("image.png");

  const uploaded = await fromOrigin(cluster, `/v1/media?chat_id=${chat.id}`, SHOP, {
    method: "POST",
    body: png,
    headers: { "content-type": "image/png" },
  });
  assert.equal(uploaded.status, 201);
  assertReadableBy(uploaded, SHOP);
  const ranged = await fromOrigin(cluster, mediaUrl, SHOP, { headers: { range: "bytes=0-9" } });
  assert.equal(ranged.status, 206);
  assertReadableBy(ranged, SHOP);
  const unknown = await fromOrigin(cluster, `/v1/media/${crypto.randomUUID()}`, SHOP);
  assert.equal(unknown.status, 404);
  assertReadableBy(unknown, SHOP);
  const anonymous = await fetch(`${cluster.main.httpUrl}${mediaUrl}`, {
    headers: { origin: SHOP },
  });
  await anonymous.body?.cancel();
  assert.equal(anonymous.status, 401);
  assertReadableBy(anonymous, SHOP);

  const evilUpload = await fromOrigin(cluster, `/v1/media?chat_id=${chat.id}`, EVIL, {
    method: "POST",
    body: png,
  });
  assert.equal(evilUpload.status, 403, "an upload from another origin stays refused");
  assertNoCors(evilUpload);
  const evilGet = await fromOrigin(cluster, mediaUrl, EVIL);
  assertNoCors(evilGet);

  // past the rate: the 429 and its Retry-After are readable too
  let limited: Response | undefined;
  for (let i = 0; i < 10 && limited === undefined; i++) {
    const response = await fromOrigin(cluster, mediaUrl, SHOP, { method: "HEAD" });
    if (response.status === 429) limited = response;
  }
  assert.ok(limited, "the rate limit was reached");
  assertReadableBy(limited, SHOP);
  assert.equal(limited.headers.get("retry-after"), "1");
});

Deno.test("with ALLOWED_ORIGINS empty any origin is named back, and a request without Origin gets no CORS headers", async () => {
  await using cluster = await startCluster({ nats: false });
  const { mediaUrl } = await chatWithImage(cluster);
  const anywhere = "http://localhost:5173";
  const pre = await preflight(cluster, mediaUrl, anywhere, "GET");
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), anywhere);
  const fetched = await fromOrigin(cluster, mediaUrl, anywhere);
  assert.equal(fetched.status, 200);
  assertReadableBy(fetched, anywhere);
  const plain = await fetch(`${cluster.main.httpUrl}${mediaUrl}`, {
    headers: { authorization: `Bearer ${await cluster.token("alice")}` },
  });
  await plain.body?.cancel();
  assert.equal(plain.status, 200);
  assertNoCors(plain);
});

Deno.test({
  name:
    "a page of an allowed origin in Chromium uploads with a bearer token and reads the answers; a page of another origin cannot",
  ignore: chromiumPath === null,
  async fn() {
    // the web app: a blank page on a port of its own, so another origin than the service's
    await using app = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () =>
        new Response("<!doctype html><title>shop</title>", {
          headers: { "content-type": "text/html" },
        }),
    );
    const appOrigin = `http://127.0.0.1:${app.addr.port}`;
    await using cluster = await startCluster({ nats: false, env: { ALLOWED_ORIGINS: appOrigin } });
    const chat = await cluster.main.service.chat.createChat("alice", "acme");
    const browser = await chromium.launch({ executablePath: chromiumPath!, args: CHROMIUM_FLAGS });
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(15_000);
      const script = async (
        [service, chatId, token, png]: [string, string, string, number[]],
      ) => {
        const auth = { authorization: `Bearer ${token}` };
        try {
          const upload = await fetch(`${service}/v1/media?chat_id=${chatId}`, {
            method: "POST",
            headers: { ...auth, "content-type": "image/png" },
            body: new Uint8Array(png),
          });
          const json = await upload.json();
          const part = await fetch(`${service}${json.media_url}`, {
            headers: { ...auth, range: "bytes=0-7" },
          });
          const missing = await fetch(`${service}/v1/media/${crypto.randomUUID()}`, {
            headers: auth,
          });
          return {
            upload: [upload.status, upload.headers.get("location") === json.media_url],
            part: [
              part.status,
              part.headers.get("content-range"),
              part.headers.get("etag") !== null,
            ],
            missing: [missing.status, (await missing.json()).code],
          };
        } catch (error) {
          return { failed: String(error) };
        }
      };
      const png = Array.from(await fixture("image.png"));
      const args: [string, string, string, number[]] = [
        cluster.main.httpUrl,
        chat.id,
        await cluster.token("alice"),
        png,
      ];
      await page.goto(`${appOrigin}/`);
      assert.deepEqual(await page.evaluate(script, args), {
        upload: [201, true],
        part: [206, `bytes 0-7/${png.length}`, true],
        missing: [404, "not_found"],
      });

      // the same page from another origin: the browser refuses to hand over any answer
      await page.goto(`http://localhost:${app.addr.port}/`);
      const refused = await page.evaluate(script, args);
      assert.match(String("failed" in refused ? refused.failed : ""), /TypeError/);
    } finally {
      await browser.close();
    }
  },
});
