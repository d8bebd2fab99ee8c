import assert from "node:assert/strict";
import { within } from "./tests/support/wait.ts";

/**
 * Deno catches SIGHUP, SIGTERM and SIGINT all at once as soon as anything listens for any one
 * of them, and gives each signal it catches with no listener of its own the default action
 * (the process ends). Between its two listeners, stop_signals.ts must not leave SIGTERM, the
 * signal an orchestrator stops the service with, caught with nobody listening: the process
 * here sends itself a SIGTERM right after the first listener is added, and lets Deno's signal
 * thread take it before the second one is.
 */
Deno.test("a SIGTERM that comes between the two stop signal listeners is heard, not the end of the process", async () => {
  const script = `
    const add = Deno.addSignalListener;
    let added = 0;
    Deno.addSignalListener = (signal, listener) => {
      add(signal, listener);
      if (++added !== 1) return;
      Deno.kill(Deno.pid, "SIGTERM");
      // Deno's own signal thread takes the signal meanwhile
      const end = performance.now() + 300;
      while (performance.now() < end);
    };
    const { listenForStopSignals, stopSignalHeard } = await import(${
    JSON.stringify(import.meta.resolve("./stop_signals.ts"))
  });
    listenForStopSignals();
    // the listener runs once the event loop turns
    while (stopSignalHeard() === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
    console.log(stopSignalHeard());`;
  const output = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", script],
      stdout: "piped",
      stderr: "piped",
    }).output(),
    10_000,
    "the process to end",
  );
  const printed = new TextDecoder().decode(output.stdout).trim();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.equal(printed, "SIGTERM");
});
