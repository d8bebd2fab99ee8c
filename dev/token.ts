/** `deno task token <user_id> [--ttl seconds]`: a JWT for the development secret (or JWT_SECRET). */
import { parseArgs } from "node:util";
import { signDevToken } from "../auth/sign.ts";

const { positionals, values } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { ttl: { type: "string", default: "86400" } },
});
const userId = positionals[0];
if (!userId) {
  console.error("usage: deno task token <user_id> [--ttl seconds]");
  Deno.exit(2);
}
let secret = Deno.env.get("JWT_SECRET");
if (!secret) {
  try {
    secret = JSON.parse(await Deno.readTextFile(".dev/secrets.json")).JWT_SECRET as string;
  } catch {
    console.error("no JWT_SECRET and no .dev/secrets.json: run `deno task dev` once first");
    Deno.exit(2);
  }
}
console.log(await signDevToken(secret, userId, { ttlSeconds: Number(values.ttl) }));
