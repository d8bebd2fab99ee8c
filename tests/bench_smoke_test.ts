/**
 * Keeps `deno task bench` working: a few seconds of every scenario on a few chats, through the
 * service it starts itself. Speed is not judged here (benchmarks are scripts); that it runs,
 * counts and loses nothing is.
 */
import assert from "node:assert/strict";
import { TEST_DATABASE_URL } from "./support/database.ts";

/**
 * Runs `deno task bench --start --smoke` on `scenarios` (with `env` added to this process's);
 * what it printed and its JSON.
 */
async function smokeRun(scenarios: string, env: Record<string, string> = {}) {
  const out = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["task", "bench", "--start", "--smoke", "--scenarios", scenarios, "--out", out],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const printed = new TextDecoder().decode(run.stdout);
    const logged = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, logged + printed);
    return { printed, logged, results: JSON.parse(await Deno.readTextFile(out)) };
  } finally {
    await Deno.remove(out);
  }
}

Deno.test("deno task bench --start --smoke runs every scenario and loses nothing, on the database and secret it made", async () => {
  {
    const { printed, logged, results } = await smokeRun("raw,load,read,connect,history");
    // the load it announces is the load it runs (--smoke: 8 in flight)
    assert.match(logged, /load: 4 chats, 0.5 s warm-up \+ 2 s, closed loop 8\n/);
    assert.match(printed, /load: mode +closed loop 8, after 0.5 s of warm-up/);
    assert.match(printed, /load: stored\/s, delivered\/s/);
    assert.match(
      printed,
      /load: CPU ms per 1,000 messages: service, PostgreSQL, load +\d+, \d+, \d+;/,
    );
    assert.ok(results.rawInsertsPerSecond > 0, "pgbench gave no rate");
    for (const scenario of ["load", "read"]) {
      const result = results[scenario];
      assert.ok(result.stored > 0, `${scenario}: nothing stored`);
      assert.equal(result.delivered, result.stored, `${scenario}: delivered`);
      assert.deepEqual(
        [result.lost, result.duplicates, result.outOfOrder, result.errors],
        [0, 0, 0, 0],
        `${scenario}: lost, duplicated, out of order, errors`,
      );
      // the contract pushes the receiver's unread after every message
      assert.ok(result.unreadPushes >= result.delivered, `${scenario}: unread pushes`);
      assert.ok(result.storedRatioToRaw > 0);
      // the CPU of the measured seconds: the service's (started by the bench), PostgreSQL's and
      // the load generator's
      assert.ok(result.cpu.serviceMsPerThousand > 0, `${scenario}: service CPU`);
      assert.ok(result.cpu.postgresMsPerThousand > 0, `${scenario}: PostgreSQL CPU`);
      assert.ok(result.cpu.loadGeneratorMsPerThousand > 0, `${scenario}: load generator CPU`);
      assert.ok(result.cpu.machineBusyPercent > 0 && result.cpu.machineBusyPercent <= 100);
      // the half second of warm-up is delivered and checked, but timed in no figure
      assert.ok(
        result.latencyMs.count > 0 && result.latencyMs.count < result.delivered,
        `${scenario}: ${result.latencyMs.count} timed of ${result.delivered} delivered`,
      );
    }
    assert.deepEqual(Object.keys(results.connectMs), ["history100", "history1000"]);
  }
  {
    // on a service of its own: after the load scenarios the heap gives back more than 200 idle
    // sockets take, and the difference can come out below zero. --start runs that service on
    // the database and secret it made, whatever the environment says: a developer's shell holds
    // the settings of the service they run by hand (its sockets would be refused 4401)
    const { results } = await smokeRun("idle", {
      DATABASE_URL: TEST_DATABASE_URL,
      JWT_SECRET: "the secret of some other service, long enough to be taken",
    });
    assert.equal(results.idle.sockets, 200);
    assert.ok(results.idle.perSocketKiB > 0);
  }
});

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Runs `deno <command...> <args...>` in the project, its output captured. */
const denoRun = (command: readonly string[], args: readonly string[]) =>
  new Deno.Command(Deno.execPath(), {
    args: [...command, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();

Deno.test("deno task bench answers a number option that is not one with the usage and code 2", async () => {
  for (
    const [args, said] of [
      [["--chats", "many"], /--chats must be a positive number, not "many"/],
      [["--rate", "0"], /--rate must be a positive number, not "0"/],
      [["--warmup=-1"], /--warmup must be zero or a positive number, not "-1"/],
      [["--pid", "service"], /--pid must be a positive number, not "service"/],
    ] as const
  ) {
    const wrong = await denoRun(["task", "-q", "bench"], args);
    const stderr = decode(wrong.stderr);
    assert.equal(wrong.code, 2, `${args.join(" ")}: ${stderr}`);
    assert.match(stderr, said);
    assert.match(stderr, /usage: deno task bench/);
    assert.doesNotMatch(stderr, /Uncaught/);
  }
});

Deno.test("every bench script answers --help with its usage, and an option it does not take with the usage and code 2", async () => {
  for (
    const [command, usage] of [
      [["task", "-q", "bench"], "usage: deno task bench --start"],
      [["task", "-q", "bench:heap"], "usage: deno task bench:heap"],
      [["task", "-q", "bench:search"], "usage: deno task bench:search"],
      [["task", "-q", "bench:sanctions"], "usage: deno task bench:sanctions"],
      [["task", "-q", "soak"], "usage: deno task soak"],
      [["run", "-A", "bench/media_memory.ts"], "usage: deno run -A bench/media_memory.ts"],
      [
        ["run", "-A", "bench/bare_websocket_memory.ts"],
        "usage: deno run -A bench/bare_websocket_memory.ts",
      ],
    ] as const
  ) {
    const name = command.join(" ");
    const help = await denoRun(command, ["--help"]);
    assert.equal(help.code, 0, `${name} --help: ${decode(help.stderr)}`);
    assert.ok(decode(help.stdout).startsWith(usage), `${name} --help: ${decode(help.stdout)}`);
    const wrong = await denoRun(command, ["--no-such-option"]);
    const stderr = decode(wrong.stderr);
    assert.equal(wrong.code, 2, `${name} --no-such-option: ${stderr}`);
    assert.match(stderr, /Unknown option '--no-such-option'/, name);
    assert.ok(stderr.includes(usage), `${name}: ${stderr}`);
    assert.doesNotMatch(stderr, /Uncaught/, name);
  }
});

Deno.test("deno task bench:heap measures the heap the service holds per idle socket", async () => {
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "bench:heap", "--sockets", "200"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const printed = new TextDecoder().decode(run.stdout);
  assert.equal(run.code, 0, new TextDecoder().decode(run.stderr) + printed);
  const perSocket = /JS heap per idle socket: (-?\d+) bytes \(200 sockets on 100 chats/.exec(
    printed,
  );
  assert.ok(perSocket, printed);
  // a socket holds kilobytes; far less would mean the sockets were not open when measured
  assert.ok(Number(perSocket[1]) > 1_000, printed);
});
