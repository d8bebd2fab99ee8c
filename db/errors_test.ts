import assert from "node:assert/strict";

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

Deno.test("any other unhandled rejection still ends the process", async () => {
  const { code, stdout, stderr } = await runAlone(
    guarded(`Object.assign(new Error("a bug"), { code: "23505" })`),
  );
  assert.notEqual(code, 0);
  assert.equal(stdout, "");
  assert.match(stderr, /Uncaught \(in promise\) Error: a bug/);
});
