import { type Config, ConfigError } from "../config.ts";
import { isConnectionFailure } from "../db/errors.ts";
import { errorFields, literalMessage, logger } from "../observability/log.ts";

/** A setting refused: one FATAL line, quoting it, and exit 78 (EX_CONFIG). */
export function exitOnRefusedSetting(error: ConfigError): never {
  // it quotes the value refused, which may hold braces
  logger().fatal(literalMessage(error.message));
  Deno.exit(78);
}

/**
 * A start that failed: one FATAL line, and exit 78 for a setting only the start could find
 * wrong (a NATS media bucket another deployment uses), 1 for anything else.
 */
export function exitOnStartFailure(error: unknown, config: Config): never {
  if (error instanceof ConfigError) exitOnRefusedSetting(error);
  logger().fatal("could not start", { ...errorFields(error), ...databaseNamed(error, config) });
  Deno.exit(1);
}

/**
 * The database a start could not reach, as `database: host:port`: the error does not always say
 * (a TLS handshake the server would not do, with `sslmode=require`). None for the embedded one.
 */
function databaseNamed(error: unknown, config: Config): { database?: string } {
  if (!config.DATABASE_URL || !isConnectionFailure(error)) return {};
  if (!URL.canParse(config.DATABASE_URL)) return {};
  const { hostname, port } = new URL(config.DATABASE_URL);
  return { database: `${hostname}:${port || 5432}` };
}
