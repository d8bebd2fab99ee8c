import { z } from "zod";

const port = z.coerce.number().int().min(0).max(65535);
const optionalText = z.string().trim().min(1).optional();
const seconds = z.coerce.number().positive();
const bytes = z.coerce.number().int().positive();
const flag = z.enum(["0", "1", "true", "false"]).transform((value) =>
  value === "1" || value === "true"
);

const settings = z.object({
  PORT: port.default(8000),
  HOST: z.string().default("0.0.0.0"),
  GRPC_PORT: port.default(50051),
  /** Set to 0 to run without the admin plane. */
  GRPC_ENABLED: flag.default(true),
  GRPC_ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  GRPC_TLS_CERT: optionalText,
  GRPC_TLS_KEY: optionalText,
  /** Unset: an embedded PostgreSQL (PGlite) under DATA_DIR, for development. */
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(20),
  DATA_DIR: z.string().default(".dev/pgdata"),
  /** Unset: in-process fan-out, one instance only. */
  NATS_URL: optionalText,
  NATS_SUBJECT_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/).default("chat"),
  JWT_SECRET: z.string().min(32, "must be at least 32 bytes").optional(),
  JWT_PUBLIC_KEY: optionalText,
  JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  JWT_ISSUER: optionalText,
  JWT_AUDIENCE: optionalText,
  JWT_USER_CLAIM: optionalText,
  /** Comma-separated origins allowed to open sockets; unset: any (non-browser clients send none). */
  ALLOWED_ORIGINS: z.string().optional().transform((value) =>
    value ? value.split(",").map((origin) => origin.trim()).filter(Boolean) : []
  ),
  LOG_LEVEL: z.enum(["debug", "info", "warning", "error"]).default("info"),
  /** Largest client frame; larger ones close the socket with 1009. */
  MAX_FRAME_BYTES: bytes.default(36 * 1024 * 1024),
  /** Sockets that answer no ping within this are closed. */
  WS_IDLE_TIMEOUT_SECONDS: seconds.default(60),
  SHUTDOWN_TIMEOUT_SECONDS: seconds.default(10),
});

/** Every setting of the service, read from the environment and nowhere else. */
export const configSchema = settings.superRefine((config, ctx) => {
  const keys = [config.JWT_SECRET, config.JWT_PUBLIC_KEY, config.JWT_JWKS_URL].filter(Boolean);
  if (keys.length !== 1) {
    ctx.addIssue({
      code: "custom",
      path: ["JWT_SECRET"],
      message: "set exactly one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL",
    });
  }
  if (config.GRPC_ENABLED && !config.GRPC_ADMIN_TOKEN) {
    ctx.addIssue({
      code: "custom",
      path: ["GRPC_ADMIN_TOKEN"],
      message: "required while the admin plane is enabled (GRPC_ENABLED=0 turns it off)",
    });
  }
  if (Boolean(config.GRPC_TLS_CERT) !== Boolean(config.GRPC_TLS_KEY)) {
    ctx.addIssue({
      code: "custom",
      path: ["GRPC_TLS_CERT"],
      message: "GRPC_TLS_CERT and GRPC_TLS_KEY go together",
    });
  }
});

export type Config = z.infer<typeof configSchema>;

/** A configuration problem, phrased as one line naming the variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Reads and validates the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ""),
  );
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid configuration: ${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

/** Just the database settings, for tools that need nothing else (`deno task migrate`). */
export function loadDatabaseConfig(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Pick<Config, "DATABASE_URL" | "DATA_DIR"> {
  const schema = settings.pick({ DATABASE_URL: true, DATA_DIR: true });
  const parsed = schema.safeParse(
    Object.fromEntries(Object.entries(env).filter(([, value]) => value)),
  );
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid configuration: ${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

const SECRET_KEYS = new Set(["GRPC_ADMIN_TOKEN", "JWT_SECRET", "GRPC_TLS_KEY"]);

/** The configuration with secrets and credentials masked, for the start-up log line. */
export function redactConfig(config: Config): Record<string, unknown> {
  const shown: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue;
    if (SECRET_KEYS.has(key)) shown[key] = "[redacted]";
    else if (key === "DATABASE_URL" || key === "NATS_URL") shown[key] = redactUrl(String(value));
    else shown[key] = value;
  }
  return shown;
}

function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = "redacted";
    return url.toString();
  } catch {
    return "[unparseable]";
  }
}
