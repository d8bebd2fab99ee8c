import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** What parseArgs gives for `options`. */
type Values<Options extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: Options }>
>["values"];

/** Which of a script's string options must hold numbers. */
export interface NumericOptions<Name extends string> {
  /** Counts and durations: more than zero. */
  positive?: readonly Name[];
  /** Zero or more. */
  nonNegative?: readonly Name[];
}

/**
 * A bench script's command line: `--help` (or `-h`) prints `usage` and exits 0; an option the
 * script does not take, or a number option that is not one, prints why and `usage` and exits 2,
 * instead of an uncaught exception or a run with NaN in it.
 */
export function commandLine<const Options extends ParseArgsOptionsConfig>(
  usage: string,
  options: Options,
  numeric: NumericOptions<keyof Options & string> = {},
): Values<Options> {
  const fail = (why: string): never => {
    console.error(`${why}\n${usage}`);
    Deno.exit(2);
  };
  const values: Record<string, unknown> = (() => {
    try {
      return parseArgs({
        args: Deno.args,
        options: { ...options, help: { type: "boolean", short: "h", default: false } },
      }).values;
    } catch (error) {
      return fail(error instanceof Error ? error.message : String(error));
    }
  })();
  if (values.help) {
    console.log(usage);
    Deno.exit(0);
  }
  const check = (names: readonly string[], ok: (value: number) => boolean, what: string) => {
    for (const name of names) {
      const value = values[name];
      if (value !== undefined && !ok(Number(value))) {
        fail(`--${name} must be ${what}, not "${value}"`);
      }
    }
  };
  check(numeric.positive ?? [], (value) => value > 0, "a positive number");
  check(numeric.nonNegative ?? [], (value) => value >= 0, "zero or a positive number");
  return values as Values<Options>;
}
