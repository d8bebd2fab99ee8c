/**
 * SIGTERM and SIGINT, listened for from the moment this module is evaluated when main.ts is the
 * main module: main.ts imports it before anything else, so that a signal that comes while the
 * rest of the module graph is still being evaluated (half a second or more) is heard too. A
 * signal nothing listens for ends deno at once, or, to deno as a container's PID 1, is ignored,
 * and the start goes on. Nothing here may import more than this file.
 */

/** The exit code of a process ended by a signal, as a shell reports it: 128 and its number. */
export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

export type StopSignal = keyof typeof SIGNAL_EXIT_CODES;

/**
 * A signal this soon after the first is taken for the same one: a terminal's Ctrl-C goes to the
 * whole process group, so the service hears it from the terminal and again as `deno task` passes
 * its own on (a few milliseconds apart, in a probe), and would otherwise end at once, unfinished.
 */
export const REPEAT_WINDOW_MS = 1_000;

let first: StopSignal | undefined;
let firstAt = 0;
let onFirst: (signal: StopSignal) => void = () => {};
// before main.ts says what to do (and logging is set up), a second signal only ends the process
let onSecond: (signal: StopSignal) => void = () => {};

function heard(signal: StopSignal) {
  if (first === undefined) {
    first = signal;
    firstAt = performance.now();
    onFirst(signal);
    return;
  }
  if (performance.now() - firstAt < REPEAT_WINDOW_MS) return;
  onSecond(signal);
  Deno.exit(SIGNAL_EXIT_CODES[signal]);
}

/**
 * Starts listening for SIGTERM and SIGINT (once per process). SIGTERM first: the first listener
 * for any of them makes Deno catch SIGHUP, SIGTERM and SIGINT all at once, and a caught signal
 * with no listener of its own still ends the process, so a SIGTERM (an orchestrator's stop)
 * between the two listeners would end it as if nothing listened.
 */
export function listenForStopSignals(): void {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => heard(signal));
  }
}

/** The first stop signal heard so far, if any. */
export function stopSignalHeard(): StopSignal | undefined {
  return first;
}

/**
 * `stop` hears the first signal (at once, if it came already); `beforeExit` hears a second one
 * (REPEAT_WINDOW_MS or more after the first), after which the process exits at once with 128
 * and the signal's number.
 */
export function onStopSignals(
  stop: (signal: StopSignal) => void,
  beforeExit: (signal: StopSignal) => void,
): void {
  onFirst = stop;
  onSecond = beforeExit;
  if (first !== undefined) stop(first);
}

if (Deno.mainModule === new URL("./main.ts", import.meta.url).href) listenForStopSignals();
