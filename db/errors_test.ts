import assert from "node:assert/strict";
import { ChatError } from "../chat/errors.ts";
import postgres from "postgres";
import { freshDatabase, TEST_DATABASE_URL } from "../tests/support/database.ts";
import {
  answerWithin,
  errorCode,
  isConnectionFailure,
  LOCK_NOT_AVAILABLE,
  translateDatabaseError,
} from "./errors.ts";

/** Runs `code` in a Deno process of its own (an unhandled rejection ends a process). */
async function runAlone(code: string) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}

const guarded = (rejection: string) => `
  import { reportLostConnectionRejections } from "./db/errors.ts";
  reportLostConnectionRejections((error) => console.log("reported", error.code));
  Promise.reject(${rejection});
  await new Promise((resolve) => setTimeout(resolve, 50));
  console.log("still running");
`;

Deno.test("an unhandled rejection of a lost database connection is reported, and the process goes on", async () => {
  const { code, stdout } = await runAlone(guarded(
    `Object.assign(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), { code: "CONNECTION_CLOSED" })`,
  ));
  assert.equal(code, 0);
  assert.deepEqual(stdout.trim().split("\n"), ["reported CONNECTION_CLOSED", "still running"]);
});

Deno.test("an unhandled rejection of a network gone or a name not resolved for now is reported too", async () => {
  // what a cancel request's own connection meets when the network goes (postgres.js leaves its
  // rejection unhandled)
  for (const code of ["ENETUNREACH", "EAI_AGAIN", "ECONNABORTED"]) {
    const { code: exit, stdout } = await runAlone(
      guarded(`Object.assign(new Error("connect ${code} 10.0.0.9:5432"), { code: "${code}" })`),
    );
    assert.equal(exit, 0, code);
    assert.deepEqual(stdout.trim().split("\n"), [`reported ${code}`, "still running"]);
  }
});

Deno.test("any other unhandled rejection still ends the process", async () => {
  const { code, stdout, stderr } = await runAlone(
    guarded(`Object.assign(new Error("a bug"), { code: "23505" })`),
  );
  assert.notEqual(code, 0);
  assert.equal(stdout, "");
  assert.match(stderr, /Uncaught \(in promise\) Error: a bug/);
});

const unavailable = (error: unknown) => error instanceof ChatError && error.code === "unavailable";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("answerWithin passes on what the work answers, and answers unavailable for what runs out of time", async () => {
  const timedOut: string[] = [];
  const never = new Promise<never>(() => {});
  const failure = new Error("refused");
  const first = answerWithin(never, 80, () => timedOut.push("first"));
  const quick = answerWithin(Promise.resolve("quick"), 80, () => timedOut.push("quick"));
  const failing = assert.rejects(
    answerWithin(Promise.reject(failure), 80, () => timedOut.push("failing")),
    (error) => error === failure,
  );
  await sleep(40);
  const second = answerWithin(never, 80, () => timedOut.push("second"));
  assert.equal(await quick, "quick");
  await failing;
  const started = performance.now();
  await assert.rejects(first, unavailable);
  assert.deepEqual(timedOut, ["first"]);
  await assert.rejects(second, unavailable);
  // the second began 40 ms after the first, so it ran out about 40 ms later
  assert.ok(performance.now() - started >= 30, "the second call was given its own full time");
  assert.deepEqual(timedOut, ["first", "second"]);
});

Deno.test("answerWithin: a call that settles after an older one still open is answered at once", async () => {
  let finish!: (value: string) => void;
  const older = answerWithin(new Promise<never>(() => {}), 100);
  const newer = answerWithin(new Promise<string>((resolve) => finish = resolve), 100);
  finish("done");
  assert.equal(await newer, "done");
  await assert.rejects(older, unavailable);
  // and no timer is left behind once every call is settled: the test's sanitizer checks that
});

Deno.test("answerWithin: a late answer after the time ran out changes nothing", async () => {
  let finish!: (value: string) => void;
  const call = answerWithin(new Promise<string>((resolve) => finish = resolve), 20);
  await assert.rejects(call, unavailable);
  finish("too late");
  await sleep(5);
});

Deno.test("a statement past the server's statement_timeout is unavailable, a date out of its range invalid_payload", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const failure = (query: Promise<unknown>) =>
      query.then(() => assert.fail("the statement succeeded"), translateDatabaseError);
    const timedOut = await failure(
      sql.begin(async (tx) => {
        await tx`set local statement_timeout = 50`;
        await tx`select pg_sleep(1)`;
      }),
    );
    assert.equal(timedOut.code, "unavailable");
    const early = await failure(sql`select ${"0000-01-01T00:00:00Z"}::timestamptz`);
    assert.equal(early.code, "invalid_payload");
  } finally {
    await sql.end();
  }
});

Deno.test("a statement past the server's lock_timeout is unavailable", async () => {
  await using database = await freshDatabase();
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  try {
    const holder = await sql.reserve();
    try {
      await holder`begin`;
      await holder`select pg_advisory_xact_lock(1)`;
      const failure = await sql.begin(async (tx) => {
        await tx`set local lock_timeout = 50`;
        await tx`select pg_advisory_xact_lock(1)`;
      }).then(() => assert.fail("the lock was taken"), translateDatabaseError);
      assert.equal(failure.code, "unavailable");
      assert.equal(errorCode(failure.cause), LOCK_NOT_AVAILABLE);
    } finally {
      await holder`rollback`;
      holder.release();
    }
  } finally {
    await sql.end();
  }
});

Deno.test("a write to a read-only server, and a transaction rolled back for a deadlock or a serialization conflict, are unavailable", () => {
  for (const code of ["25006", "40001", "40P01"]) {
    const error = Object.assign(new Error(`SQLSTATE ${code}`), { code });
    assert.equal(translateDatabaseError(error).code, "unavailable", code);
  }
});

Deno.test("a query the server ends its session under, for idle_session_timeout or idle_in_transaction_session_timeout, is unavailable, as a lost connection", () => {
  // A statement sent on a pooled connection just as the server ends it for being idle (a
  // setting some deployments give the role or database) fails with the server's FATAL error,
  // not a closed socket: the next try, on a new connection, succeeds
  for (const code of ["57P05", "25P03", "57P02"]) {
    const error = Object.assign(new Error(`SQLSTATE ${code}`), { code, severity: "FATAL" });
    assert.equal(isConnectionFailure(error), true, code);
    assert.equal(translateDatabaseError(error).code, "unavailable", code);
  }
});

Deno.test("text a database's encoding cannot hold is invalid_payload saying so, NUL invalid_payload naming NUL", async () => {
  const name = `chat_latin1_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(
    `create database ${name} encoding 'LATIN1' lc_collate 'C' lc_ctype 'C' template template0`,
  );
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  const latin1 = postgres(url.href, { max: 1, onnotice: () => {} });
  try {
    const refusal = async (text: string) => {
      const error = await latin1`select ${text}::text`.then(() => undefined, (error) => error);
      assert.ok(error, `${JSON.stringify(text)} was taken`);
      return translateDatabaseError(error);
    };
    // an emoji on a LATIN1 database was said to contain NUL characters
    const emoji = await refusal("🙂");
    assert.equal(emoji.code, "invalid_payload");
    assert.match(emoji.message, /encoding/);
    const nul = await refusal("a\u0000b");
    assert.equal(nul.code, "invalid_payload");
    assert.match(nul.message, /NUL/);
  } finally {
    await latin1.end();
    await admin.unsafe(`drop database ${name} with (force)`);
    await admin.end();
  }
});
