/**
 * CPU time of the processes a benchmark run shares the machine with, read from /proc (Linux).
 * Latency on a shared two-core box moves by ±20 % from hour to hour; CPU time per message moves
 * far less, so it is the figure to compare builds by.
 */

/** Linux reports process times in USER_HZ ticks, 100 a second on every architecture it runs. */
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds used so far. `service` is null without a pid; `postgres` sums its local processes,
 * those that ended too (backends of closed connections); `loadGenerator` is this process, whose
 * participants make the load.
 */
export interface CpuReading {
  service: number | null;
  postgres: number;
  loadGenerator: number;
  /** The machine as a whole (/proc/stat): busy and total, over every core. */
  machineBusy: number;
  machineTotal: number;
}

/** What the processes used between two readings, per 1,000 messages, and how busy the box was. */
export interface CpuUse {
  serviceMsPerThousand: number | null;
  postgresMsPerThousand: number;
  loadGeneratorMsPerThousand: number;
  machineBusyPercent: number;
}

/**
 * Reads the CPU time of `servicePid` (when given), of PostgreSQL, and of the machine. Through
 * `cat`: Deno reads /proc only with every permission granted.
 */
export async function readCpu(servicePid: number | null): Promise<CpuReading> {
  const output = await new Deno.Command("sh", {
    args: ["-c", "cat /proc/stat /proc/[0-9]*/stat 2>/dev/null"],
    stdout: "piped",
    stderr: "null",
  }).output();
  let machineBusy = 0, machineTotal = 0, postgres = 0, loadGenerator = 0;
  let service: number | null = null;
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    if (line.startsWith("cpu ")) {
      // user nice system idle iowait irq softirq steal: idle and iowait are time not worked
      const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
      machineTotal = fields.reduce((sum, value) => sum + value, 0) / TICKS_PER_SECOND;
      machineBusy = machineTotal - (fields[3]! + fields[4]!) / TICKS_PER_SECOND;
      continue;
    }
    const process = processStat(line);
    if (!process) continue;
    // with the children's: a backend that ends takes its time out of the sum of live ones and
    // adds it to the postmaster's reaped children's, so PostgreSQL's total only grows
    if (process.command === "postgres") postgres += process.seconds + process.childrenSeconds;
    if (process.pid === servicePid) service = process.seconds;
    if (process.pid === Deno.pid) loadGenerator = process.seconds;
  }
  return { service, postgres, loadGenerator, machineBusy, machineTotal };
}

/** The CPU used from `from` to `to` for `messages` messages. */
export function cpuUse(from: CpuReading, to: CpuReading, messages: number): CpuUse {
  const perThousand = (seconds: number) =>
    messages === 0 ? 0 : Math.round((seconds * 1_000_000) / messages);
  return {
    serviceMsPerThousand: from.service === null || to.service === null
      ? null
      : perThousand(to.service - from.service),
    postgresMsPerThousand: perThousand(to.postgres - from.postgres),
    loadGeneratorMsPerThousand: perThousand(to.loadGenerator - from.loadGenerator),
    machineBusyPercent: Math.round(
      (100 * (to.machineBusy - from.machineBusy)) / (to.machineTotal - from.machineTotal || 1),
    ),
  };
}

/**
 * A /proc/<pid>/stat line's pid, command, CPU seconds (user + system) and those of its children
 * that ended and were waited for.
 */
function processStat(
  line: string,
): { pid: number; command: string; seconds: number; childrenSeconds: number } | null {
  // the command is in parentheses and may itself hold spaces or parentheses
  const open = line.indexOf(" (");
  const close = line.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  // after the command: state is field 3; utime and stime are fields 14 and 15, cutime and
  // cstime 16 and 17
  const rest = line.slice(close + 2).split(" ");
  return {
    pid: Number(line.slice(0, open)),
    command: line.slice(open + 2, close),
    seconds: (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND,
    childrenSeconds: (Number(rest[13]) + Number(rest[14])) / TICKS_PER_SECOND,
  };
}
