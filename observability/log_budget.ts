/**
 * How many lines a source that others can make speak may write: past `lines` in a window of
 * `windowMs`, its lines are dropped and counted, and the next line it writes says how many
 * were left out. A caller that sends the same mistake again and again then costs a few lines
 * a minute, not one each (a disk, a log collector's quota). No timer: windows start as lines
 * come.
 */
export function createLogBudget(
  options: { lines: number; windowMs: number },
  now: () => number = () => performance.now(),
) {
  let windowStart = Number.NEGATIVE_INFINITY;
  let written = 0;
  let leftOut = 0;
  return {
    /**
     * Whether one more line may be written: undefined when it is to be dropped, else how many
     * lines were dropped since the last one written (for that line to say).
     */
    take(): number | undefined {
      const at = now();
      if (at - windowStart >= options.windowMs) {
        windowStart = at;
        written = 0;
      }
      if (written >= options.lines) {
        leftOut++;
        return undefined;
      }
      written++;
      const dropped = leftOut;
      leftOut = 0;
      return dropped;
    },
  };
}

export type LogBudget = ReturnType<typeof createLogBudget>;
