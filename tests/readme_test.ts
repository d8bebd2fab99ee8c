import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { descriptorReserve } from "../open_files.ts";
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

Deno.test("the README's configuration table and .env.example give the defaults config.ts has", async () => {
  // only what must be set, so that every other setting takes its default
  const required = { JWT_SECRET: "x".repeat(32), GRPC_ADMIN_TOKEN: "y".repeat(16) };
  const defaults: Record<string, unknown> = loadConfig(required);
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const rows = [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]*)` +\| ([^|]*?) +\|/gm)];
  const documented = rows.map(([, name, value]) => [name!, value!] as const)
    .filter(([name]) => !(name in required));
  const literal = documented.filter(([, value]) => /^`[^`]+`$/.test(value));
  assert.ok(literal.length >= 30, `only ${literal.length} literal defaults found in the README`);
  for (const [name, value] of literal) {
    assert.equal(String(defaults[name]), value.slice(1, -1), `README: ${name}`);
  }
  for (const [name, value] of documented) {
    if (value === "none") assert.equal(defaults[name], undefined, `README: ${name} has no default`);
  }
  const example = await Deno.readTextFile(new URL(".env.example", ROOT));
  for (const [, name, value] of example.matchAll(/^([A-Z][A-Z0-9_]*)=(.+)$/gm)) {
    assert.equal(String(defaults[name!]), value, `.env.example: ${name}`);
  }
});

Deno.test("the README's descriptor reserve is what open_files.ts keeps", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const config = loadConfig({
    JWT_SECRET: "x".repeat(32),
    GRPC_ADMIN_TOKEN: "y".repeat(16),
    DATABASE_URL: "postgres://chat@db/chat",
    NATS_URL: "nats://nats:4222",
  });
  const atDefaults = /At the defaults\s+with NATS that is (\d+)/.exec(readme);
  assert.equal(Number(atDefaults?.[1]), descriptorReserve(config), "README: the reserve");
  // the TLS front: listeners more, and descriptors per admin connection instead of one
  const tls = new RegExp(
    String.raw`(\d+) admin connections \(with\s+\`GRPC_TLS_CERT\` the TLS front's\s+(\w+)\s+` +
      String.raw`listeners more[^)]*?(\d+) descriptors per\s+connection`,
  ).exec(readme);
  const words: Record<string, number> = { one: 1, two: 2, three: 3 };
  const [connections, listeners, perConnection] = [
    Number(tls?.[1]),
    words[tls?.[2] ?? ""] ?? NaN,
    Number(tls?.[3]),
  ];
  assert.equal(
    descriptorReserve({ ...config, GRPC_TLS_CERT: "cert", GRPC_TLS_KEY: "key" }),
    descriptorReserve(config) + listeners + connections * (perConnection - 1),
    "README: the reserve with GRPC_TLS_CERT",
  );
});
