import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { chromium, type Page } from "playwright-core";
import { hs256Key } from "../auth/secret.ts";
import { CHROMIUM_FLAGS, chromiumFor } from "./support/chromium.ts";
import { startCluster } from "./support/service.ts";
import { acked, joinChat, seedMessages, sendText } from "./support/steps.ts";

/**
 * The demo page (DEMO_PAGE=1) in a real headless Chromium: two pages, a customer and a vendor,
 * chat with each other through the client library bundled for browsers. CI installs Debian's
 * `chromium` (.ci/run); without it (and without CHROMIUM_PATH) the test is skipped, saying so.
 * Screenshots of both pages are left in tests/artifacts/. (`deno task test` ignores reads of
 * /proc/sys/fs/binfmt_misc/WSLInterop: playwright-core probes it for WSL when it loads, and
 * Deno would want --allow-all for it.)
 */

const ARTIFACTS = new URL("./artifacts/", import.meta.url);

const chromiumPath = chromiumFor("tests/browser_test.ts");

/** The list row of a chat. */
const row = (chatId: string) => `#chat-list li[data-chat-id="${chatId}"]`;

/** Waits until the message with `seq` is on the page; `extra` narrows it (a class, a child). */
async function message(page: Page, seq: number, extra = "") {
  return await page.waitForSelector(`#messages li[data-seq="${seq}"]${extra}`);
}

Deno.test({
  name:
    "two browser pages chat on the demo page: unread counts, typing, text, read marks, an image and a deletion",
  ignore: chromiumPath === null,
  async fn() {
    await using cluster = await startCluster({ env: { DEMO_PAGE: "1" } });
    const chat = await cluster.main.service.chat.createChat("alice", "acme");
    const [aliceToken, acmeToken] = await Promise.all([
      cluster.token("alice"),
      cluster.token("acme"),
    ]);
    const browser = await chromium.launch({
      executablePath: chromiumPath!,
      args: CHROMIUM_FLAGS,
    });
    const pageErrors: string[] = [];
    try {
      const open = async () => {
        const page = await (await browser.newContext({ viewport: { width: 900, height: 600 } }))
          .newPage();
        page.setDefaultTimeout(15_000);
        page.on("pageerror", (error) => pageErrors.push(String(error)));
        return page;
      };
      const [alice, acme] = await Promise.all([open(), open()]);

      // alice follows a link with her token; acme pastes his
      await alice.goto(`${cluster.main.httpUrl}/#token=${aliceToken}`);
      await acme.goto(`${cluster.main.httpUrl}/`);
      await acme.fill("#token-input", acmeToken);
      await acme.click("#token-form button[type=submit]");
      await Promise.all([alice.waitForSelector(row(chat.id)), acme.waitForSelector(row(chat.id))]);
      assert.equal(await alice.textContent("#who"), "signed in as alice");
      assert.equal(await alice.getAttribute("#connection", "data-state"), "open");

      // alice writes while acme has not opened the chat: acme's list counts it unread
      await alice.click(row(chat.id));
      await alice.fill("#text", "Hello, is the kettle in stock?");
      await alice.press("#text", "Enter");
      await message(alice, 1, ".mine");
      await acme.waitForSelector(`${row(chat.id)} .badge[data-unread="1"]`);
      assert.equal(
        await acme.textContent(`${row(chat.id)} .preview`),
        "Hello, is the kettle in stock?",
      );

      // acme opens it: the message is read, alice sees the mark, acme's count drops to 0
      await acme.click(row(chat.id));
      assert.match((await (await message(acme, 1, ".theirs")).textContent()) ?? "", /kettle/);
      await message(alice, 1, " .read-mark[data-read='true']");
      await acme.waitForSelector(`${row(chat.id)} .badge[data-unread="0"]`, { state: "attached" });

      // acme types: alice sees it; then the reply arrives live
      await acme.fill("#text", "Yes");
      // (selectors only: the page's CSP forbids the eval behind string page functions)
      await alice.waitForSelector('#typing:text-is("acme is typing…")');
      await acme.fill("#text", "Yes, three left.");
      await acme.press("#text", "Enter");
      const reply = await message(alice, 2, ".theirs");
      assert.match((await reply.textContent()) ?? "", /Yes, three left\./);
      await alice.waitForSelector("#typing:empty");

      // alice sends an image; acme's page shows it, fetched from /v1/media/ with the token
      await alice.setInputFiles(
        "#image",
        new URL("./fixtures/image.png", import.meta.url).pathname,
      );
      await message(acme, 3, ' img[data-loaded="true"]');
      assert.match(
        (await acme.getAttribute('li[data-seq="3"] img', "src")) ?? "",
        /^\/v1\/media\/.+\?token=/,
      );

      // alice deletes her first message: it is gone from both pages
      await alice.click('#messages li[data-seq="1"] button.delete');
      await message(acme, 1, ".deleted");
      await message(alice, 1, ".deleted");
      assert.equal(await acme.textContent('#messages li[data-seq="1"] .body'), "message deleted");

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await alice.screenshot({ path: new URL("browser-alice.png", ARTIFACTS).pathname });
      await acme.screenshot({ path: new URL("browser-acme.png", ARTIFACTS).pathname });
      assert.deepEqual(pageErrors, [], "no script errors on either page");
    } finally {
      await browser.close();
    }
  },
});

/**
 * A headless Chromium for `fn`, closed after it; pages are opened by `fn` with `open()`, with
 * `scripted` one whose CSP lets the test run scripts in it (`page.evaluate`).
 */
async function withBrowser(
  fn: (open: (scripted?: boolean) => Promise<Page>) => Promise<void>,
): Promise<void> {
  const browser = await chromium.launch({ executablePath: chromiumPath!, args: CHROMIUM_FLAGS });
  const pageErrors: string[] = [];
  try {
    await fn(async (scripted = false) => {
      const viewport = { width: 900, height: 600 };
      const page = await (await browser.newContext({ viewport, bypassCSP: scripted })).newPage();
      page.setDefaultTimeout(15_000);
      page.on("pageerror", (error) => pageErrors.push(String(error)));
      return page;
    });
    assert.deepEqual(pageErrors, [], "no script errors");
  } finally {
    await browser.close();
  }
}

Deno.test({
  name: "the chat list's preview of a last message follows its edit and its deletion",
  ignore: chromiumPath === null,
  async fn() {
    await using cluster = await startCluster({ nats: false, env: { DEMO_PAGE: "1" } });
    const chat = await cluster.main.service.chat.createChat("alice", "acme");
    await using alice = await joinChat(cluster, "alice", chat.id);
    await withBrowser(async (open) => {
      const acme = await open();
      await acme.goto(`${cluster.main.httpUrl}/#token=${await cluster.token("acme")}`);
      await acme.waitForSelector(row(chat.id));
      const sent = await sendText(alice, "acme", "my card number is 4111…");
      await acme.waitForSelector(`${row(chat.id)} .preview:text-is("my card number is 4111…")`);
      await acked(alice, { action: "edit_message", message_id: sent.id, content: "call me" });
      await acme.waitForSelector(`${row(chat.id)} .preview:text-is("call me")`);
      await acked(alice, { action: "delete_message", message_id: sent.id });
      // a deleted message's content is seen nowhere again, the list included
      await acme.waitForSelector(`${row(chat.id)} .preview:text-is("message deleted")`);
    });
  },
});

Deno.test({
  name:
    "with JWT_USER_CLAIM set, the page signs in as the user that claim names, as the server does",
  ignore: chromiumPath === null,
  async fn() {
    await using cluster = await startCluster({
      nats: false,
      env: { DEMO_PAGE: "1", JWT_USER_CLAIM: "uid" },
    });
    const chat = await cluster.main.service.chat.createChat("carol", "acme");
    // an identity provider's token: its `sub` is not the user id the service knows
    const token = await new SignJWT({ uid: "carol" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject("idp|8812")
      .setExpirationTime("1h")
      .sign(hs256Key(cluster.secret));
    await withBrowser(async (open) => {
      const carol = await open();
      await carol.goto(`${cluster.main.httpUrl}/#token=${token}`);
      await carol.waitForSelector(row(chat.id));
      assert.equal(await carol.textContent("#who"), "signed in as carol");
      assert.equal(await carol.textContent(`${row(chat.id)} .name`), "acme");
      await carol.click(row(chat.id));
      await carol.fill("#text", "Hello");
      await carol.press("#text", "Enter");
      await message(carol, 1, ".mine");
    });
  },
});

Deno.test({
  name: "a user whose id is not ASCII is shown as themselves, their messages as their own",
  ignore: chromiumPath === null,
  async fn() {
    await using cluster = await startCluster({ nats: false, env: { DEMO_PAGE: "1" } });
    const chat = await cluster.main.service.chat.createChat("zoë", "acme");
    await withBrowser(async (open) => {
      const zoe = await open();
      await zoe.goto(`${cluster.main.httpUrl}/#token=${await cluster.token("zoë")}`);
      await zoe.waitForSelector(row(chat.id));
      assert.equal(await zoe.textContent("#who"), "signed in as zoë");
      assert.equal(await zoe.textContent(`${row(chat.id)} .name`), "acme");
      await zoe.click(row(chat.id));
      await zoe.fill("#text", "Bonjour");
      await zoe.press("#text", "Enter");
      await message(zoe, 1, ".mine");
    });
  },
});

Deno.test({
  name: "a chat clicked twice while another is open is opened once, and left for good",
  ignore: chromiumPath === null,
  async fn() {
    await using cluster = await startCluster({ nats: false, env: { DEMO_PAGE: "1" } });
    const [first, second] = [
      await cluster.main.service.chat.createChat("alice", "acme"),
      await cluster.main.service.chat.createChat("alice", "globex"),
    ];
    await seedMessages(cluster, second.id, { from: "globex", to: "alice", count: 1 });
    await using acme = await joinChat(cluster, "acme", first.id);
    await withBrowser(async (open) => {
      const alice = await open(true);
      await alice.goto(`${cluster.main.httpUrl}/#token=${await cluster.token("alice")}`);
      await alice.click(row(first.id));
      await alice.waitForSelector('#chat-title:text-is("Chat with acme")');
      // a double click: the second comes while the first still closes the chat open before
      await alice.locator(row(second.id)).evaluate((item: { click(): void }) => {
        item.click();
        item.click();
      });
      await message(alice, 1, ".theirs");
      assert.equal(await alice.locator("#messages li").count(), 1, "the chat shown once");
      // back to the first chat: what is written there goes there, and only there
      await alice.click(row(first.id));
      await alice.waitForSelector('#chat-title:text-is("Chat with acme")');
      await alice.fill("#text", "for acme");
      await alice.press("#text", "Enter");
      assert.equal((await acme.nextOfType("chat_message")).message.content, "for acme");
      await message(alice, 1, ".mine");
    });
  },
});

Deno.test({
  name: "a chat read on another page of the same user drops the unread count on this one",
  ignore: chromiumPath === null,
  async fn() {
    await using cluster = await startCluster({ nats: false, env: { DEMO_PAGE: "1" } });
    const chat = await cluster.main.service.chat.createChat("alice", "acme");
    await seedMessages(cluster, chat.id, { from: "acme", to: "alice", count: 2 });
    const link = `${cluster.main.httpUrl}/#token=${await cluster.token("alice")}`;
    await withBrowser(async (open) => {
      // alice's laptop and phone
      const [laptop, phone] = [await open(), await open()];
      await laptop.goto(link);
      await laptop.waitForSelector(`${row(chat.id)} .badge[data-unread="2"]`);
      await phone.goto(link);
      await phone.click(row(chat.id));
      await phone.waitForSelector(`${row(chat.id)} .badge[data-unread="0"]`, { state: "attached" });
      await laptop.waitForSelector(`${row(chat.id)} .badge[data-unread="0"]`, {
        state: "attached",
      });
    });
  },
});

Deno.test({
  name: "a message deleted before it was read no longer counts as unread in the chat list",
  ignore: chromiumPath === null,
  async fn() {
    await using cluster = await startCluster({ nats: false, env: { DEMO_PAGE: "1" } });
    const chat = await cluster.main.service.chat.createChat("alice", "acme");
    await using acme = await joinChat(cluster, "acme", chat.id);
    await withBrowser(async (open) => {
      const alice = await open();
      await alice.goto(`${cluster.main.httpUrl}/#token=${await cluster.token("alice")}`);
      await alice.waitForSelector(row(chat.id));
      const sent = await sendText(acme, "alice", "sent to the wrong customer");
      await alice.waitForSelector(`${row(chat.id)} .badge[data-unread="1"]`);
      await acked(acme, { action: "delete_message", message_id: sent.id });
      await alice.waitForSelector(`${row(chat.id)} .badge[data-unread="0"]`, {
        state: "attached",
      });
    });
  },
});
