import { isIP } from "node:net";
import { z } from "zod";
import { natsServers } from "./bus/nats_servers.ts";
import { tlsProblem } from "./config_tls.ts";
import { redactUrls } from "./observability/redact.ts";

/** Blanks would coerce to 0: a port the system chooses, where the operator meant one. */
const port = z.string().trim().min(1, "must be a port number, not blanks")
  .pipe(z.coerce.number<string>().int().min(0).max(65535));
const optionalText = z.string().trim().min(1).optional();
/**
 * Durations end up in setTimeout, which takes anything past 2^31 - 1 ms (24.8 days) as 1 ms:
 * a longer SHUTDOWN_TIMEOUT would cut a shutdown at once, a longer FEED_SWEEP_SECONDS sweep
 * nonstop. 24 days leaves room for what is added to them.
 */
const MAX_SECONDS = 24 * 86400;
const seconds = z.coerce.number().positive()
  .max(MAX_SECONDS, `must be at most ${MAX_SECONDS} (24 days: a timer waits no longer)`);
const bytes = z.coerce.number().int().positive();
const flag = z.enum(["0", "1", "true", "false"]).transform((value) =>
  value === "1" || value === "true"
);
const MiB = 1024 * 1024;
/** Hosts as `URL.hostname` spells them, on which a plain-http JWKS cannot be served by others. */
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);
/** Deno itself drops a WebSocket message over 64 MiB, without a close code. */
export const MAX_WEBSOCKET_MESSAGE_BYTES = 64 * MiB;

/**
 * A frame limit that fits the base64 of a `mediaBytes` file (4/3 of it, rounded up to MiB)
 * and 2 MiB for the rest of the frame, within Deno's own limit: 36 MiB for 25 MiB.
 */
export function frameBytesFor(mediaBytes: number): number {
  return Math.min(MAX_WEBSOCKET_MESSAGE_BYTES, Math.ceil(mediaBytes * 4 / 3 / MiB) * MiB + 2 * MiB);
}

/** `value` as the `Origin` header a browser sends; undefined when it is no origin (`*`, a path). */
function originOf(value: string): string | undefined {
  if (!URL.canParse(value)) return undefined;
  const url = new URL(value);
  // "null" is the origin of file: and other opaque URLs, which any page may claim
  if (url.origin === "null" || url.username || url.password) return undefined;
  if (url.pathname !== "/" || url.search || url.hash || /[?#]/.test(value)) return undefined;
  // a host such as `${domain}` (a placeholder left unexpanded) parses, but no browser sends it
  if (!/^([a-z0-9_.-]+|\[[0-9a-f:.]+\])$/.test(url.hostname)) return undefined;
  return url.origin;
}

const settings = z.object({
  PORT: port.default(8000),
  /**
   * Checked here, as the listeners would find it only after the migrations, in a line that does
   * not name it. The gRPC listener takes no brackets around an IPv6 address.
   */
  HOST: z.string().refine(
    (host) => isIP(host) !== 0 || /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(host),
    "must be an IP address (IPv6 without brackets) or a host name",
  ).default("0.0.0.0"),
  GRPC_PORT: port.default(50051),
  /** Set to 0 to run without the admin plane. */
  GRPC_ENABLED: flag.default(true),
  /**
   * Sent as `authorization: Bearer <token>`: a space, a control character or a non-ASCII one
   * could never arrive as it was set, so the plane would start and refuse every call.
   */
  GRPC_ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters")
    .regex(
      /^[\x21-\x7e]+$/,
      "must be printable ASCII without spaces, as it travels in an `authorization: Bearer` header",
    )
    .optional(),
  GRPC_TLS_CERT: optionalText,
  GRPC_TLS_KEY: optionalText,
  /**
   * How often GRPC_TLS_CERT and GRPC_TLS_KEY's files are read again for a renewed pair. A reading
   * parses the pair and checks the key on the event loop, about a millisecond: every 0.001 s
   * took 38% of a core, every 0.1 s 1%.
   */
  GRPC_TLS_RELOAD_SECONDS: seconds
    .min(0.1, "must be at least 0.1 (each reading takes about a millisecond of the event loop)")
    .default(60),
  /** Events a WatchEvents stream may fall behind by before it is ended (RESOURCE_EXHAUSTED). */
  GRPC_WATCH_BUFFER: z.coerce.number().int().min(1).max(1_000_000).default(1000),
  /** WatchEvents streams open at once on an instance; more are refused (RESOURCE_EXHAUSTED). */
  GRPC_MAX_WATCH_STREAMS: z.coerce.number().int().min(1).max(100_000).default(100),
  /** Unset: an embedded PostgreSQL (PGlite) under DATA_DIR, for development. */
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(20),
  DATA_DIR: z.string().default(".dev/pgdata"),
  /** Unset: in-process fan-out, one instance only. */
  NATS_URL: optionalText,
  NATS_SUBJECT_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/).default("chat"),
  /** Where media bytes live: PostgreSQL (media_chunks) or a NATS JetStream object store. */
  MEDIA_BACKEND: z.enum(["postgres", "nats"]).default("postgres"),
  /** The object store bucket when MEDIA_BACKEND=nats. */
  MEDIA_NATS_BUCKET: z.string().regex(/^[-\w]+$/).default("chat_media"),
  /** Largest decoded file of each kind; larger ones are refused before anything is stored. */
  MEDIA_MAX_IMAGE_BYTES: bytes.default(10 * MiB),
  MEDIA_MAX_AUDIO_BYTES: bytes.default(25 * MiB),
  MEDIA_MAX_VIDEO_BYTES: bytes.default(25 * MiB),
  /**
   * Media requests (`GET`, `HEAD`, `POST`) one user may make per second on one instance, and
   * how many they may save up: a chat screen asks for its page of images at once.
   */
  MEDIA_RATE_PER_SECOND: z.coerce.number().positive().default(20),
  MEDIA_RATE_BURST: z.coerce.number().int().positive().default(100),
  /** Uploads one user may have open at once on one instance; a stalled one holds memory. */
  MEDIA_MAX_UPLOADS_PER_USER: z.coerce.number().int().positive().default(4),
  /** Downloads one user may have open at once on one instance, each until its body is sent. */
  MEDIA_MAX_DOWNLOADS_PER_USER: z.coerce.number().int().positive().default(64),
  /** An upload that sends no bytes for this long is ended (400), and its place given back. */
  MEDIA_UPLOAD_IDLE_SECONDS: seconds.default(30),
  /**
   * A download whose client takes nothing for this long (a paused player, a client gone without
   * closing its connection) is cut, and its place given back.
   */
  MEDIA_DOWNLOAD_IDLE_SECONDS: seconds.default(60),
  /**
   * An upload slower than this on average (after MEDIA_UPLOAD_IDLE_SECONDS of grace) is ended
   * (400): one that trickles a byte now and then would hold its place and memory for hours.
   */
  MEDIA_UPLOAD_MIN_BYTES_PER_SECOND: z.coerce.number().positive().default(2048),
  /**
   * Media uploaded and not sent in a message within this many hours is deleted (its bytes with
   * it, unless other media shares them), by a sweep every half of it (an hour at most).
   */
  MEDIA_UNSENT_RETENTION_HOURS: z.coerce.number().positive().max(MAX_SECONDS / 3600).default(24),
  /** Counted in UTF-8 bytes, of which the HS256 key is made (auth/secret.ts), not characters. */
  JWT_SECRET: z.string().refine(
    (secret) => new TextEncoder().encode(secret).byteLength >= 32,
    "must be at least 32 bytes",
  ).optional(),
  JWT_PUBLIC_KEY: optionalText,
  /**
   * Whoever serves the key set decides who signs in, so it comes over https; plain http only
   * from this machine (tests, local development).
   */
  JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).refine((value) => {
    // zod runs this check after a failed format check too, with the value that failed it
    if (!URL.canParse(value)) return true;
    const url = new URL(value);
    return url.protocol === "https:" || LOOPBACK_HOSTS.has(url.hostname);
  }, "must be https; plain http only on 127.0.0.1, ::1 or localhost").optional(),
  JWT_ISSUER: optionalText,
  JWT_AUDIENCE: optionalText,
  JWT_USER_CLAIM: optionalText,
  /**
   * Comma-separated origins allowed to open sockets, upload media and read the media routes'
   * answers (CORS); unset: any (non-browser clients send none). Kept as browsers send them in
   * `Origin` (host lower-cased, no default port, no trailing `/`), which the upgrade and the
   * media routes compare as strings: a value that is no origin could never match.
   */
  ALLOWED_ORIGINS: z.string().optional().transform((value, ctx) => {
    const origins = value ? value.split(",").map((origin) => origin.trim()).filter(Boolean) : [];
    // set, yet no origin once split (`${A},${B}` with both unset): the empty list would let every
    // origin in, the opposite of what setting it asks for
    if (value !== undefined && origins.length === 0) {
      ctx.addIssue({
        code: "custom",
        message: "names no origin (leave it unset, or empty, to allow any)",
      });
      return z.NEVER;
    }
    return origins.map((origin) => {
      const parsed = originOf(origin);
      if (parsed !== undefined) return parsed;
      ctx.addIssue({
        code: "custom",
        message: `${JSON.stringify(origin)} is no origin (scheme://host[:port], as browsers send)`,
      });
      return z.NEVER;
    });
  }),
  LOG_LEVEL: z.enum(["debug", "info", "warning", "error"]).default("info"),
  /** Serves the demo chat page at `/` (on in `deno task dev`; `start` cannot build it). */
  DEMO_PAGE: flag.default(false),
  /**
   * Largest client frame; larger ones close the socket with 1009. Default: `frameBytesFor`
   * the largest media limit, so that base64 media fits. Files whose base64 does not fit go
   * through `POST /v1/media`.
   */
  MAX_FRAME_BYTES: bytes.max(MAX_WEBSOCKET_MESSAGE_BYTES).optional(),
  /** Sockets that answer no ping within this are closed, and those that leave a close unanswered cut. */
  WS_IDLE_TIMEOUT_SECONDS: seconds.default(60),
  /** Client frames a socket may send per second, and how many it may save up. */
  WS_RATE_PER_SECOND: z.coerce.number().positive().default(20),
  WS_RATE_BURST: z.coerce.number().int().positive().default(40),
  /** Refused frames in a row after which a flooding socket is closed with 4429. */
  WS_FLOOD_LIMIT: z.coerce.number().int().positive().default(100),
  /**
   * Open sockets one instance may hold (each holds a file descriptor); more are answered 503.
   * Unset: what the open-file limit leaves besides the rest's descriptors, at most 50000
   * (open_files.ts socketLimit).
   */
  WS_MAX_SOCKETS: z.coerce.number().int().positive().optional(),
  /** Open sockets one user may hold on one instance; more are closed with 4429. */
  WS_MAX_SOCKETS_PER_USER: z.coerce.number().int().positive().default(20),
  /** Bytes waiting to be sent to one socket before it counts as a slow reader and is closed. */
  WS_MAX_BUFFERED_BYTES: bytes.default(16 * 1024 * 1024),
  SHUTDOWN_TIMEOUT: seconds.default(10),
  /**
   * How often each instance looks in the store for messages of its followed chats that were
   * stored but never heard on the bus (one query for all of them); such a message reaches the
   * sockets within two of these.
   */
  FEED_SWEEP_SECONDS: seconds.default(5),
});

/** The settings whose values are never shown: in the start-up line, nor in a refusal. */
const SECRET_KEYS = new Set(["GRPC_ADMIN_TOKEN", "JWT_SECRET", "GRPC_TLS_KEY"]);

/** Every setting of the service, read from the environment and nowhere else. */
export const configSchema = settings.superRefine((config, ctx) => {
  if (config.NATS_URL) {
    // checked here rather than at the connect, which comes after the migrations and would end
    // the start with 1, for the orchestrator to start it again and again
    try {
      natsServers(config.NATS_URL);
    } catch (error) {
      ctx.addIssue({
        code: "custom",
        path: ["NATS_URL"],
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
  if (config.MEDIA_BACKEND === "nats" && !config.NATS_URL) {
    ctx.addIssue({
      code: "custom",
      path: ["MEDIA_BACKEND"],
      message: "MEDIA_BACKEND=nats needs NATS_URL",
    });
  }
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
  // found here, not by the gRPC listener after the migrations, which exits 1 to be restarted
  if (config.GRPC_ENABLED && config.GRPC_PORT !== 0 && config.GRPC_PORT === config.PORT) {
    ctx.addIssue({
      code: "custom",
      path: ["GRPC_PORT"],
      message: `must differ from PORT (${config.PORT}): both planes listen on HOST`,
    });
  }
  if (Boolean(config.GRPC_TLS_CERT) !== Boolean(config.GRPC_TLS_KEY)) {
    ctx.addIssue({
      code: "custom",
      path: ["GRPC_TLS_CERT"],
      message: "GRPC_TLS_CERT and GRPC_TLS_KEY go together",
    });
  }
  if (config.GRPC_TLS_CERT && config.GRPC_TLS_KEY) {
    const problem = tlsProblem(config.GRPC_TLS_CERT, config.GRPC_TLS_KEY);
    if (problem) {
      ctx.addIssue({ code: "custom", path: [problem.variable], message: problem.message });
    }
  }
}).transform((config) => ({
  ...config,
  MAX_FRAME_BYTES: config.MAX_FRAME_BYTES ?? frameBytesFor(
    Math.max(
      config.MEDIA_MAX_IMAGE_BYTES,
      config.MEDIA_MAX_AUDIO_BYTES,
      config.MEDIA_MAX_VIDEO_BYTES,
    ),
  ),
}));

export type Config = z.infer<typeof configSchema>;

/** A configuration problem, phrased as one line naming the variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * `load()`'s configuration; for the command-line tools (dev, seed, migrate), a ConfigError is
 * said in one line and exits 78, as `deno task start` does. Anything else is thrown on.
 */
export function configOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    Deno.exit(78);
  }
}

/**
 * For the command-line tools that take no arguments (dev, migrate, seed): `--help` or `-h` prints
 * `usage` and exits 0, anything else is refused with it (exit 2), rather than ignored while the
 * tool goes on to change the configured database.
 */
export function noArgumentsOrExit(usage: string, args: readonly string[] = Deno.args): void {
  const [first] = args;
  if (first === undefined) return;
  if (first === "--help" || first === "-h") {
    console.log(usage);
    Deno.exit(0);
  }
  console.error(`${first}: this tool takes no arguments\n${usage}`);
  Deno.exit(2);
}

/** The names of every setting: all the service reads of the environment. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(settings.shape);

/**
 * The settings' variables and nothing else, so that `--allow-env` can list exactly them
 * (`Deno.env.toObject()` would need access to the whole environment).
 */
function readEnvironment(): Record<string, string | undefined> {
  return Object.fromEntries(CONFIG_VARIABLES.map((name) => [name, Deno.env.get(name)]));
}

/** Reads and validates the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = readEnvironment()): Config {
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

/**
 * The file beside an embedded database's directory (not in it: PGlite owns its contents) that
 * the one process holding the database keeps locked (db/embedded.ts).
 */
export function embeddedLockFile(dataDir: string): string {
  return `${dataDir.replace(/\/+$/, "")}.lock`;
}

/**
 * For the development tools (dev, seed, migrate), which may write under .dev/ only (deno.json):
 * an embedded database elsewhere would fail on its first write with a stack trace, so it is
 * refused as a setting (`memory://` writes nothing); so is `.dev` itself, beside which its lock
 * file would be.
 */
export function requireWritableDataDir<T extends Pick<Config, "DATABASE_URL" | "DATA_DIR">>(
  config: T,
): T {
  const onDisk = !config.DATABASE_URL && !config.DATA_DIR.startsWith("memory://");
  const writable = (path: string) =>
    Deno.permissions.querySync({ name: "write", path }).state === "granted";
  if (
    onDisk && !(writable(config.DATA_DIR) && writable(embeddedLockFile(config.DATA_DIR)))
  ) {
    throw new ConfigError(
      "invalid configuration: DATA_DIR: must be under .dev/, where `deno task dev`, `seed` and " +
        "`migrate` may write",
    );
  }
  return config;
}

const URL_KEYS = new Set(["DATABASE_URL", "JWT_JWKS_URL"]);

/** The configuration with secrets and credentials masked, for the start-up log line. */
export function redactConfig(config: Config): Record<string, unknown> {
  const shown: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue;
    if (SECRET_KEYS.has(key)) shown[key] = "[redacted]";
    // a JWKS URL's user and password are credentials too: fetch sends them as Basic auth
    else if (URL_KEYS.has(key)) shown[key] = redactUrls(String(value), { tokenAsUser: false });
    else if (key === "NATS_URL") shown[key] = redactUrls(String(value), { tokenAsUser: true });
    else shown[key] = value;
  }
  return shown;
}
