import assert from "node:assert/strict";
import { devTaskCommand, runDevTask } from "../tests/support/dev_task.ts";
import { within } from "../tests/support/wait.ts";
import { REPEAT_WINDOW_MS } from "../stop_signals.ts";

Deno.test("`deno task dev` with a bad setting names it in one line and exits 78", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const { code, stderr } = await runDevTask("dev", { cwd, env: { LOG_LEVEL: "loud" } });
    assert.equal(code, 78, stderr);
    assert.match(stderr, /^invalid configuration: LOG_LEVEL: .+$/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("`deno task dev` on an embedded database another process holds says so in one line", async () => {
  const cwd = await Deno.makeTempDir();
  // held as `deno task dev` or `seed` holds it (db/embedded.ts): a lock file beside the directory
  await Deno.mkdir(`${cwd}/.dev`);
  using lock = await Deno.open(`${cwd}/.dev/pgdata.lock`, { create: true, write: true });
  assert.ok(await lock.tryLock(true));
  try {
    const { code, stderr } = await runDevTask("dev", { cwd, env: {} });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^the embedded database in \S+ is open in another process.*$/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

for (const task of ["dev", "seed", "migrate"]) {
  Deno.test(`\`deno task ${task}\` with DATA_DIR outside .dev/, where it may not write, says so in one line`, async () => {
    const cwd = await Deno.makeTempDir();
    try {
      const { code, stderr } = await runDevTask(task, { cwd, env: { DATA_DIR: `${cwd}/pgdata` } });
      assert.equal(code, 78, stderr);
      assert.match(stderr, /^invalid configuration: DATA_DIR: .*\.dev\/.*$/);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}

for (const task of ["dev", "seed"]) {
  Deno.test(`\`deno task ${task}\` with a database it cannot reach says so in one line and exits 1`, async () => {
    const cwd = await Deno.makeTempDir();
    try {
      const { code, stdout, stderr } = await runDevTask(task, {
        cwd,
        // nothing listens on port 1
        env: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/chat", PORT: "0", GRPC_PORT: "0" },
      });
      assert.equal(code, 1, `${stdout}\n${stderr}`);
      assert.match(stderr, /^could not start: connect ECONNREFUSED 127\.0\.0\.1:1$/);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}

for (const task of ["dev", "migrate", "seed"]) {
  Deno.test(`\`deno task ${task} --help\` says what it does and touches no database; an argument it does not take is refused`, async () => {
    const cwd = await Deno.makeTempDir();
    // nothing listens on port 1: a run that went on would fail to connect
    const env = { DATABASE_URL: "postgres://postgres@127.0.0.1:1/chat" };
    try {
      const help = await runDevTask(task, { cwd, env, args: ["--help"] });
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`^usage: deno task ${task}\n`));
      const unknown = await runDevTask(task, { cwd, env, args: ["--dry-run"] });
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.match(unknown.stderr, new RegExp(`^--dry-run: [^\n]+\nusage: deno task ${task}\n`));
      // not even the development secrets were made
      assert.deepEqual(await Array.fromAsync(Deno.readDir(cwd)), []);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}

Deno.test("`deno task dev` on a port another process holds names the setting in one line", async () => {
  const cwd = await Deno.makeTempDir();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const env = { HOST: "127.0.0.1", PORT: String(taken.addr.port), GRPC_PORT: "0" };
    const { code, stderr } = await runDevTask("dev", { cwd, env });
    assert.equal(code, 2, stderr);
    assert.equal(
      stderr,
      `PORT: cannot listen on 127.0.0.1:${taken.addr.port}: the address is in use ` +
        "(0: any free port)",
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a second Ctrl-C ends `deno task dev` at once, its shutdown unfinished: exit 130", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const env = {
      HOST: "127.0.0.1",
      PORT: "0",
      GRPC_PORT: "0",
      SHUTDOWN_TIMEOUT: "30",
      MEDIA_UPLOAD_IDLE_SECONDS: "60",
    };
    const child = (await devTaskCommand("dev", { cwd, env })).spawn();
    let printed = "";
    const read = Promise.all([
      (async () => {
        for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) printed += text;
      })(),
      child.stderr.cancel(),
    ]);
    // the first lines it prints: the port, and the sample chat's URL with a token
    const url = /localhost:(\d+)\/v1\/ws\/chat\/([^/]+)\/\?token=(\S+)/;
    const chat = await within(
      (async () => {
        for (;;) {
          const found = url.exec(printed);
          if (found) return found;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })(),
      60_000,
      "dev's URLs",
    );
    const [, port, chatId, token] = chat;
    // an upload under way, sending nothing: the shutdown waits for it (up to its deadline)
    using upload = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
    await upload.write(new TextEncoder().encode(
      `POST /v1/media?chat_id=${chatId} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
        "Content-Length: 100000\r\n\r\n",
    ));
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.kill("SIGINT");
    // past the window in which a repeat is taken for the first Ctrl-C
    await new Promise((resolve) => setTimeout(resolve, REPEAT_WINDOW_MS + 500));
    child.kill("SIGINT");
    const status = await within(child.status, 5_000, "the exit after the second Ctrl-C").catch(
      (error) => {
        child.kill("SIGKILL");
        throw error;
      },
    );
    await read;
    assert.equal(status.code, 130);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

for (const [task, args] of [["dev", []], ["seed", []], ["token", ["alice"]]] as const) {
  Deno.test(`\`deno task ${task}\` with a .dev/secrets.json cut short names the file in one line`, async () => {
    const cwd = await Deno.makeTempDir();
    // what a write cut short by a kill leaves behind
    await Deno.mkdir(`${cwd}/.dev`);
    await Deno.writeTextFile(`${cwd}/.dev/secrets.json`, "");
    try {
      const env = { PORT: "0", GRPC_PORT: "0" };
      const { code, stderr } = await runDevTask(task, { cwd, env, args: [...args] });
      assert.equal(code, 2, stderr);
      assert.match(stderr, /^\.dev\/secrets\.json is unreadable \(.+\): delete it[^\n]*$/);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}

Deno.test("`deno task dev` with JWT_PUBLIC_KEY set starts on that key, and prints no tokens it cannot verify", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const { publicKey } = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      true,
      ["sign", "verify"],
    );
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", publicKey)).toBase64();
    const pem = `-----BEGIN PUBLIC KEY-----\n${spki}\n-----END PUBLIC KEY-----`;
    const env = { HOST: "127.0.0.1", PORT: "0", GRPC_PORT: "0", JWT_PUBLIC_KEY: pem };
    const child = (await devTaskCommand("dev", { cwd, env })).spawn();
    let printed = "";
    let stderr = "";
    const read = Promise.all([
      (async () => {
        for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) printed += text;
      })(),
      (async () => {
        for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
      })(),
    ]);
    const started = await within(
      (async () => {
        for (;;) {
          if (printed.includes("sample chat")) return true;
          if (await Promise.race([child.status.then(() => true), delay(50)])) return false;
        }
      })(),
      60_000,
      "dev's start",
    ).catch((error) => {
      child.kill("SIGKILL");
      throw error;
    });
    if (started) child.kill("SIGINT");
    const status = await child.status;
    await read;
    assert.ok(started, `${printed}\n${stderr}`);
    assert.equal(status.code, 0, stderr);
    // the tokens of the development secret would be refused by this service
    assert.doesNotMatch(printed, /token=/);
    assert.match(printed, /JWT_PUBLIC_KEY/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

const delay = (ms: number) => new Promise<false>((resolve) => setTimeout(() => resolve(false), ms));

for (const task of ["dev", "seed", "migrate"]) {
  Deno.test(`\`deno task ${task}\` with DATA_DIR .dev itself, beside which it may not lock, says so in one line`, async () => {
    const cwd = await Deno.makeTempDir();
    try {
      const { code, stderr } = await runDevTask(task, { cwd, env: { DATA_DIR: ".dev" } });
      assert.equal(code, 78, stderr);
      assert.match(stderr, /^invalid configuration: DATA_DIR: .*\.dev\/.*$/);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}
