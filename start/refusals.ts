import { createTokenVerifier } from "../auth/verifier.ts";
import { type Config, ConfigError } from "../config.ts";
import { jwtKey } from "./token_verifier.ts";

/**
 * Settings the schema takes but `deno task start` cannot use, each refused with a ConfigError
 * naming it before anything is opened (`deno task dev` grants what these need).
 */
export async function refuseUnusableSettings(config: Config): Promise<void> {
  refuseEmbeddedDatabase(config);
  refuseDatabaseUrlWithoutUser(config);
  await refuseUnusablePublicKey(config);
}

/**
 * A JWT_PUBLIC_KEY the verifier cannot use (no SPKI PEM, a short RSA key) is a bad setting,
 * said before anything starts rather than once the database is migrated and NATS connected.
 */
async function refuseUnusablePublicKey(config: Config) {
  const key = jwtKey(config);
  if (key.kind !== "public_key") return;
  await createTokenVerifier({ key }).catch((error: Error) => {
    throw new ConfigError(`invalid configuration: JWT_PUBLIC_KEY: ${error.message}`);
  });
}

/**
 * Without DATABASE_URL the service would run the embedded development database, which needs
 * write access that `deno task start` (the container) does not grant: say so plainly.
 */
function refuseEmbeddedDatabase(config: Config) {
  if (config.DATABASE_URL) return;
  const write = Deno.permissions.querySync({ name: "write", path: config.DATA_DIR });
  if (write.state !== "granted") {
    throw new ConfigError(
      "invalid configuration: DATABASE_URL: required (the embedded database is for `deno task dev`)",
    );
  }
}

/**
 * Without a user in DATABASE_URL, postgres.js asks the system for the process's user name,
 * which `deno task start` may not ask (`--allow-sys=uid` only): it would connect as no user,
 * refused by the server in a line that names neither DATABASE_URL nor the cause.
 */
function refuseDatabaseUrlWithoutUser(config: Config) {
  if (!config.DATABASE_URL || new URL(config.DATABASE_URL).username) return;
  // what node:os userInfo() asks for; queried, as asking could prompt in a terminal
  const kinds = ["uid", "gid", "username"] as const;
  if (kinds.some((kind) => Deno.permissions.querySync({ name: "sys", kind }).state !== "granted")) {
    throw new ConfigError(
      "invalid configuration: DATABASE_URL: must name the user (postgres://user@host/database)",
    );
  }
}
