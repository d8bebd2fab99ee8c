import assert from "node:assert/strict";
import { configureLogging, errorFields, logger } from "./log.ts";

/** Captures what the sink writes, as parsed lines. */
function capture() {
  const decoder = new TextDecoder();
  let text = "";
  return {
    write: (bytes: Uint8Array) => {
      text += decoder.decode(bytes);
    },
    get lines() {
      return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    },
    get text() {
      return text;
    },
  };
}

Deno.test("configureLogging writes one JSON object per line, properties at the top level", async () => {
  const out = capture();
  await using _logging = await configureLogging("info", { write: out.write });
  logger("ws").with({ connection_id: "c-1" }).info("socket opened", { endpoint: "chat" });
  assert.equal(out.lines.length, 1);
  const [line] = out.lines;
  assert.equal(line.level, "INFO");
  assert.equal(line.logger, "chat.ws");
  assert.equal(line.message, "socket opened");
  assert.equal(line.connection_id, "c-1");
  assert.equal(line.endpoint, "chat");
  assert.ok(!Number.isNaN(Date.parse(line["@timestamp"])));
});

Deno.test("a property named as a field of the line keeps its value apart, the field its own", async () => {
  const out = capture();
  await using _logging = await configureLogging("info", { write: out.write });
  logger("ws").info("socket opened", { message: "hi", level: "x", logger: "y", "@timestamp": 1 });
  const [line] = out.lines;
  assert.equal(line.message, "socket opened");
  assert.equal(line.level, "INFO");
  assert.equal(line.logger, "chat.ws");
  assert.ok(!Number.isNaN(Date.parse(line["@timestamp"])));
  assert.equal(line.property_message, "hi");
  assert.equal(line.property_level, "x");
  assert.equal(line.property_logger, "y");
  assert.equal(line["property_@timestamp"], 1);
});

Deno.test("configureLogging drops lines below LOG_LEVEL", async () => {
  const out = capture();
  await using _logging = await configureLogging("warning", { write: out.write });
  logger().info("not shown");
  logger().debug("not shown either");
  logger().warn("shown");
  assert.deepEqual(out.lines.map((line) => line.message), ["shown"]);
});

Deno.test("errorFields keeps names, codes and messages down the cause chain, never other properties", () => {
  const postgresError = Object.assign(new Error("duplicate key value"), {
    name: "PostgresError",
    code: "23505",
    query: "insert into messages (content) values ($1)",
    parameters: ["the message text"],
  });
  const error = new Error("the database is unavailable", { cause: postgresError });
  const fields = errorFields(error);
  assert.deepEqual(fields, {
    error: { name: "Error", message: "the database is unavailable" },
    causes: [{ name: "PostgresError", message: "duplicate key value", code: "23505" }],
  });
  assert.ok(!JSON.stringify(fields).includes("the message text"));
  assert.ok(!JSON.stringify(fields).includes("insert into"));
});

Deno.test("errorFields withholds the text of a JSON syntax error, which quotes its input", () => {
  let syntaxError: unknown;
  try {
    JSON.parse("secret words");
  } catch (error) {
    syntaxError = error;
  }
  const fields = errorFields(syntaxError);
  assert.equal(fields.error.name, "SyntaxError");
  assert.ok(!JSON.stringify(fields).includes("secret"));
});

/** Runs `body` as a script after logging and exitOnUncaughtErrors are set up; its exit and lines. */
async function runUncaught(body: string) {
  const log = new URL("./log.ts", import.meta.url).href;
  const errors = new URL("../db/errors.ts", import.meta.url).href;
  const script = `import { configureLogging, exitOnUncaughtErrors } from "${log}";
import { reportLostConnectionRejections } from "${errors}";
await configureLogging("info");
reportLostConnectionRejections(() => console.log("reported"));
exitOnUncaughtErrors();
${body}`;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const lines = decoder.decode(stdout).split("\n").filter(Boolean);
  return { code, lines, stderr: decoder.decode(stderr) };
}

Deno.test("an uncaught exception ends the process with one FATAL JSON line and exit 1", async () => {
  const { code, lines, stderr } = await runUncaught(
    `setTimeout(() => { throw new TypeError("boom"); }, 0);`,
  );
  assert.equal(code, 1, stderr);
  assert.equal(stderr, "");
  assert.equal(lines.length, 1, lines.join("\n"));
  const record = JSON.parse(lines[0]!);
  assert.equal(record.level, "FATAL");
  assert.equal(record.message, "uncaught error: exiting");
  assert.deepEqual(record.error, { name: "TypeError", message: "boom" });
  assert.ok(
    record.stack.length > 0 && record.stack.every((frame: string) => frame.startsWith("at ")),
  );
});

Deno.test("an unhandled rejection ends the process likewise, its JSON syntax error text withheld", async () => {
  const { code, lines, stderr } = await runUncaught(
    `Promise.reject(new SyntaxError("'secret' is no JSON"));`,
  );
  assert.equal(code, 1, stderr);
  assert.equal(stderr, "");
  assert.equal(lines.length, 1, lines.join("\n"));
  const record = JSON.parse(lines[0]!);
  assert.equal(record.level, "FATAL");
  assert.equal(record.error.name, "SyntaxError");
  assert.doesNotMatch(lines[0]!, /secret/);
});

Deno.test("a lost database connection's rejection is left to its reporter and the process goes on", async () => {
  const { code, lines, stderr } = await runUncaught(
    `Promise.reject(Object.assign(new Error("gone"), { code: "CONNECTION_CLOSED" }));
setTimeout(() => console.log("still running"), 50);`,
  );
  assert.equal(code, 0, stderr);
  assert.deepEqual(lines, ["reported", "still running"]);
});
