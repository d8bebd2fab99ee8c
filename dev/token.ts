/**
 * `deno task token <user_id> [--ttl seconds]`: a JWT for the development secret (or JWT_SECRET),
 * with the JWT_ISSUER and JWT_AUDIENCE the service checks.
 */
import { parseArgs } from "node:util";
import { checkedClaims, signDevToken } from "../auth/sign.ts";
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
// set but empty counts as unset, as for the service
const setting = (name: string) => Deno.env.get(name) || undefined;
// the service then takes the issuer's tokens only: one of the development secret is refused
const issuerKey = ["JWT_PUBLIC_KEY", "JWT_JWKS_URL"].find((name) => setting(name));
if (issuerKey) {
  console.error(`${issuerKey} is set: the service takes your issuer's tokens only; sign with it`);
  Deno.exit(2);
}
let secret = setting("JWT_SECRET");
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
const claims = checkedClaims({
  JWT_ISSUER: setting("JWT_ISSUER"),
  JWT_AUDIENCE: setting("JWT_AUDIENCE"),
});
console.log(await signDevToken(secret, userId, { ttlSeconds, ...claims }));
