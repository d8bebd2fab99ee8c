import { REPO_ROOT } from "./service_process.ts";

/** The Dockerfile's instructions, one per entry, continuation lines joined. */
export async function dockerfileInstructions(): Promise<string[]> {
  const text = await Deno.readTextFile(new URL("Dockerfile", REPO_ROOT));
  return text.replaceAll("\\\n", " ").split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** The argv of the exec-form `CMD`: what the container runs. */
export async function dockerCommand(): Promise<string[]> {
  const cmd = (await dockerfileInstructions()).filter((line) => line.startsWith("CMD "));
  if (cmd.length !== 1) throw new Error(`expected one CMD, found ${cmd.length}`);
  return parseExecForm(cmd[0]!.slice("CMD ".length));
}

/** The argv of the exec-form `HEALTHCHECK ... CMD [...]`. */
export async function dockerHealthcheck(): Promise<string[]> {
  const line = (await dockerfileInstructions()).find((line) => line.startsWith("HEALTHCHECK "));
  if (!line) throw new Error("no HEALTHCHECK");
  const at = line.indexOf(" CMD ");
  if (at < 0) throw new Error(`HEALTHCHECK without CMD: ${line}`);
  return parseExecForm(line.slice(at + " CMD ".length));
}

/** The `deno task start` line of deno.json, split into its arguments. */
export async function startTask(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", REPO_ROOT)));
  const line = config?.tasks?.start;
  if (typeof line !== "string") throw new Error("deno.json has no start task");
  return line.trim().split(/\s+/);
}

function parseExecForm(text: string): string[] {
  const argv: unknown = JSON.parse(text);
  if (!Array.isArray(argv) || !argv.every((arg) => typeof arg === "string")) {
    throw new Error(`not an exec-form command: ${text}`);
  }
  return argv;
}
