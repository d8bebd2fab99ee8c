/** `deno task token <user_id> [--ttl seconds]`: a JWT for the development secret (or JWT_SECRET). */
import { parseArgs } from "node:util";
import { signDevToken } from "../auth/sign.ts";
import { DevSecretsUnreadable, readDevSecrets } from "./secrets.ts";

const USAGE = "usage: deno task token <user_id> [--ttl seconds]";

/** A mistake on the command line is one line and exit 2, not a stack trace. */
function usageError(problem: string): never {
  console.error(`${problem}\n${USAGE}`);
  Deno.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      ttl: { type: "string", default: "86400" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
} catch (error) {
  usageError(error instanceof Error ? error.message : String(error));
}
const { positionals, values } = parsed;
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const userId = positionals[0];
if (!userId || positionals.length > 1) usageError("one user_id, please");
const ttlSeconds = Number(values.ttl);
if (!/^\d+$/.test(values.ttl) || !Number.isSafeInteger(ttlSeconds) || ttlSeconds === 0) {
  usageError(`--ttl must be a whole number of seconds above 0; got ${values.ttl}`);
}
let secret = Deno.env.get("JWT_SECRET");
if (!secret) {
  try {
    secret = (await readDevSecrets())?.JWT_SECRET;
  } catch (error) {
    // unreadable, or not to be read (permissions): said as it is, not as no file
    console.error(error instanceof DevSecretsUnreadable ? error.message : String(error));
    Deno.exit(2);
  }
  if (!secret) {
    console.error("no JWT_SECRET and no .dev/secrets.json: run `deno task dev` once first");
    Deno.exit(2);
  }
}
console.log(await signDevToken(secret, userId, { ttlSeconds }));
