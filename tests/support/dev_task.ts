import { baseEnvironment, REPO_ROOT } from "./service_process.ts";
import { within } from "./wait.ts";

/** Where and how a tool runs. */
export interface DevTaskRun {
  /** A scratch directory: the `.dev/` the tool makes goes there, not into the repository. */
  cwd: string;
  /** The tool's whole environment, but for what Deno needs to find its cache. */
  env: Record<string, string>;
  /** The tool's command-line arguments. */
  args?: string[];
}

/** `deno task <name>`'s own command (dev, seed, migrate, token: the tools), run as `run` says. */
export async function devTaskCommand(
  name: string,
  { cwd, env, args: toolArgs = [] }: DevTaskRun,
): Promise<Deno.Command> {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", REPO_ROOT))).tasks;
  const [deno, run, ...args] = String(tasks[name]).trim().split(/\s+/);
  if (deno !== "deno" || run !== "run") throw new Error(`${name} is no \`deno run\` task`);
  // the script, last, from the repository; deno.json with it
  args.push(new URL(args.pop()!, REPO_ROOT).pathname);
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${new URL("deno.json", REPO_ROOT).pathname}`,
      ...args,
      ...toolArgs,
    ],
    cwd,
    clearEnv: true,
    env: { ...baseEnvironment(), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs `deno task <name>`'s own command (devTaskCommand) to its end, within a minute. */
export async function runDevTask(
  name: string,
  run: DevTaskRun,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await within(
    (await devTaskCommand(name, run)).output(),
    60_000,
    `deno task ${name}`,
  );
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr).trim(),
  };
}
