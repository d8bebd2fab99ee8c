import assert from "node:assert/strict";

Deno.test("deno task soak ends when the service it soaks dies, instead of spinning on sockets that closed", async () => {
  // run as `deno task soak` runs it, but as this test's own child, for a kill to reach it
  const soak = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-sys",
      "bench/soak.ts",
      ...["--minutes", "1", "--chats", "5", "--rate", "20", "--sample", "5", "--churn", "0"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(soak.stdout).text();
  const lines = soak.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let logged = "";
  // the first sample's row, taken as the load begins
  while (!/sockets open\n\s+\d+\s+[\d.]+.*\n/.test(logged)) {
    const { value, done } = await lines.read();
    assert.ok(!done, logged);
    logged += value;
  }
  const pid = Number(/service pid (\d+)/.exec(logged)![1]);
  // the service crashes: every socket closes, well before the next sample
  Deno.kill(pid, "SIGKILL");
  const rest = (async () => {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) return;
      logged += value;
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = await Promise.race([
    soak.status.then(() => "ended"),
    new Promise((resolve) => timer = setTimeout(() => resolve("still running"), 15_000)),
  ]);
  clearTimeout(timer);
  if (ended !== "ended") soak.kill("SIGKILL");
  await Promise.all([soak.status, rest, stdout]);
  assert.equal(ended, "ended", `15 s after the service died:\n${logged}`);
  assert.notEqual((await soak.status).code, 0, logged);
});
