import type { TokenVerifier } from "../auth/verifier.ts";
import type { Bus } from "../bus/bus.ts";
import type { Config } from "../config.ts";
import { checkDatabase } from "../db/database_check.ts";
import { createReadiness, type Readiness } from "../observability/readiness.ts";
import type { Database } from "./database.ts";
import type { Media } from "./media.ts";
import { jwtKey } from "./token_verifier.ts";

/** Readiness over what this configuration depends on: the database, and NATS, media, JWKS in use. */
export function createServiceReadiness(
  config: Config,
  deps: { database: Database; bus: Bus; media: Media; verifier: TokenVerifier },
): Readiness {
  const { bus, verifier } = deps;
  const { readinessSql } = deps.database;
  const mediaStore = deps.media.store;
  return createReadiness({
    database: (signal) => checkDatabase(readinessSql, signal),
    ...(config.NATS_URL ? { nats: (signal: AbortSignal) => bus.check(signal) } : {}),
    ...(config.MEDIA_BACKEND === "nats"
      ? { media: (signal: AbortSignal) => mediaStore.check(signal) }
      : {}),
    // Without a key set not one token can be checked. Once one is held it keeps verifying
    // through an outage of the endpoint, which must not take every instance out at once.
    ...(jwtKey(config).kind === "jwks" ? { jwks: () => verifier.canVerify() } : {}),
  });
}
