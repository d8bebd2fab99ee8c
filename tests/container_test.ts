import assert from "node:assert/strict";
import { CONFIG_VARIABLES } from "../config.ts";
import { dockerCommand, dockerfileInstructions, startTask } from "./support/dockerfile.ts";
import { REPO_ROOT } from "./support/service_process.ts";

/**
 * The image cannot be built here, so these checks hold the Dockerfile, compose.yaml and the
 * operator documentation to what the process tests run.
 */

const read = (path: string) => Deno.readTextFile(new URL(path, REPO_ROOT));

/** The values of `--name=a,b,c` in an argv; undefined when absent, [] when given bare. */
function flagList(argv: string[], name: string): string[] | undefined {
  const flag = argv.find((arg) => arg === name || arg.startsWith(`${name}=`));
  if (flag === undefined) return undefined;
  return flag === name ? [] : flag.slice(name.length + 1).split(",");
}

Deno.test("the Dockerfile runs exactly the `deno task start` command", async () => {
  assert.deepEqual(await dockerCommand(), await startTask());
});

Deno.test("the start command grants exact env and read lists, and no other power", async () => {
  const argv = await startTask();
  for (const forbidden of ["-A", "--allow-all", "--allow-write", "--allow-run", "--allow-ffi"]) {
    assert.ok(!argv.some((arg) => arg.split("=")[0] === forbidden), `${forbidden} is granted`);
  }
  assert.ok(argv.includes("--allow-net"), "the service needs the network");
  assert.deepEqual(
    [...(flagList(argv, "--allow-env") ?? [])].sort(),
    [...CONFIG_VARIABLES].sort(),
    "--allow-env must list exactly the settings of config.ts",
  );
  const read = flagList(argv, "--allow-read");
  assert.ok(read && read.length > 0, "--allow-read must be a list");
  assert.ok(read.includes("db/migrations"), "the migrations are read at start");
  assert.ok(read.includes("/dev/null"), "free descriptors are counted at start (open_files.ts)");
  const sys = flagList(argv, "--allow-sys");
  assert.ok(sys === undefined || sys.length > 0, "--allow-sys must be a list");
  assert.equal(argv.at(-1), "main.ts");
});

Deno.test("the Dockerfile builds on the Deno image of the version CI installs", async () => {
  const ci = await read(".ci/run");
  const version = /^DENO_VERSION=(\S+)$/m.exec(ci)?.[1];
  assert.ok(version, "no DENO_VERSION in .ci/run");
  const from = (await dockerfileInstructions()).filter((line) => line.startsWith("FROM "));
  assert.deepEqual(from, [`FROM denoland/deno:${version}`]);
});

Deno.test("the Dockerfile caches dependencies from deno.lock first, runs as a non-root user, exposes both ports and checks health", async () => {
  const lines = await dockerfileInstructions();
  const index = (predicate: (line: string) => boolean, what: string) => {
    const at = lines.findIndex(predicate);
    assert.ok(at >= 0, `no ${what}`);
    return at;
  };
  const lockCopy = index((line) => /^COPY .*deno\.lock/.test(line), "COPY of deno.lock");
  const install = index((line) => /^RUN deno install --frozen/.test(line), "deno install");
  const sources = index((line) => /^COPY (--chown=\S+ )?\. \.$/.test(line), "COPY of the sources");
  assert.ok(lockCopy < install && install < sources, "dependencies must be their own layer");
  const users = lines.filter((line) => line.startsWith("USER "));
  assert.ok(users.length > 0 && users.at(-1) !== "USER root", "the service must not run as root");
  const exposed = lines.filter((line) => line.startsWith("EXPOSE ")).join(" ");
  assert.match(exposed, /\b8000\b/);
  assert.match(exposed, /\b50051\b/);
  index((line) => line.startsWith("HEALTHCHECK "), "HEALTHCHECK");
  const ignored = (await read(".dockerignore")).split("\n").map((line) => line.trim());
  for (const path of [".git", ".dev", "node_modules", ".env"]) {
    assert.ok(ignored.includes(path), `.dockerignore must leave out ${path}`);
  }
});

Deno.test(".env.example and the README's configuration table list every setting", async () => {
  const example = new Set(
    [...(await read(".env.example")).matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1]),
  );
  const readme = new Set(
    [...(await read("README.md")).matchAll(/^\| `([A-Z][A-Z0-9_]*)` +\|/gm)].map((match) =>
      match[1]
    ),
  );
  for (const variable of CONFIG_VARIABLES) {
    assert.ok(example.has(variable), `.env.example lacks ${variable}`);
    assert.ok(readme.has(variable), `the README's configuration table lacks ${variable}`);
  }
  for (const variable of [...example, ...readme]) {
    assert.ok(CONFIG_VARIABLES.includes(variable!), `${variable} is documented but not a setting`);
  }
});

Deno.test("compose.yaml gives the chat instances only settings the service knows", async () => {
  const compose = await read("compose.yaml");
  const block = /^x-chat-environment: &chat-environment\n((?: {2}.*\n)+)/m.exec(compose)?.[1];
  assert.ok(block, "no x-chat-environment block");
  const names = [...block.matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map((match) => match[1]!);
  assert.ok(names.includes("DATABASE_URL") && names.includes("NATS_URL"));
  for (const name of names) assert.ok(CONFIG_VARIABLES.includes(name), `${name} is not a setting`);
  assert.match(compose, /replicas: 2/);
  assert.equal([...compose.matchAll(/condition: service_healthy/g)].length, 3);
});
