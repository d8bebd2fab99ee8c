import assert from "node:assert/strict";
import { startCluster } from "./support/service.ts";
import { within } from "./support/wait.ts";

const ROOT = new URL("../", import.meta.url);
const MARK = "<!-- tests/readme_test.ts runs this block as it is -->";

/** The README's client example: the ```ts block after the mark. */
async function readmeExample(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const after = readme.split(MARK)[1];
  const code = after && /^\s*```ts\n([\s\S]*?)\n```/.exec(after)?.[1];
  assert.ok(code, `README.md has no \`\`\`ts block after ${MARK}`);
  return code;
}

Deno.test("the README's client example runs as written against a running service", async () => {
  await using cluster = await startCluster();
  const chat = await cluster.main.service.chat.createChat("customer-1", "vendor-1");
  const child = new Deno.Command(Deno.execPath(), {
    // type-checked, from standard input, in the repository root (where README puts it)
    args: ["run", "--check", "--allow-net", "--allow-env", "-"],
    cwd: ROOT,
    env: {
      CHAT_URL: cluster.main.httpUrl,
      CHAT_TOKEN: await cluster.token("customer-1"),
      CHAT_ID: chat.id,
      NO_COLOR: "1",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(await readmeExample()));
  await writer.close();
  const { code, stdout, stderr } = await within(child.output(), 60_000, "the example to finish");
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `the example failed:\n${new TextDecoder().decode(stderr)}`);
  const lines = out.trim().split("\n");
  assert.equal(lines[0], "0 messages so far");
  assert.ok(lines.includes("stored as #1"), out);
  assert.ok(lines.includes("refused: not_found"), out);
  const history = await cluster.main.service.chat.history(chat, { limit: 10 });
  assert.deepEqual(history.items.map((message) => message.content), [
    "Is the blue kettle still in stock?",
  ]);
});
