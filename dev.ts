/**
 * `deno task dev`: the service on its embedded defaults (PGlite under .dev/, in-process
 * fan-out), with a development JWT secret and admin token generated once and kept in
 * .dev/secrets.json (never in the repository), a sample chat, and ready-to-use tokens.
 */
import { checkedClaims, signDevToken } from "./auth/sign.ts";
import { configOrExit, loadConfig, noArgumentsOrExit, requireWritableDataDir } from "./config.ts";
import { EmbeddedDatabaseInUse } from "./db/embedded.ts";
import { type RunningService, startService } from "./main.ts";
import { couldNotStart } from "./dev/could_not_start.ts";
import { overDefaults } from "./dev/environment.ts";
import { ListenFailure } from "./start/listen_failure.ts";
import { devSecretsOrExit } from "./dev/secrets.ts";
import { configureLogging } from "./observability/log.ts";
import { listenForStopSignals, onStopSignals } from "./stop_signals.ts";

/**
 * What a newcomer can fix in starting (a second `dev`, a port taken) is said in one line, as
 * `deno task start` does (a bad setting: configOrExit), not as a stack trace, and so is a database
 * out of reach; anything else is a bug and keeps its stack (couldNotStart).
 */
function refused(error: unknown): never {
  if (error instanceof EmbeddedDatabaseInUse) {
    console.error(error.message);
    Deno.exit(2);
  }
  if (error instanceof ListenFailure) {
    console.error(`${error.message}${error.setting === "HOST" ? "" : " (0: any free port)"}`);
    Deno.exit(2);
  }
  couldNotStart(error);
}

noArgumentsOrExit(
  "usage: deno task dev\n" +
    "runs the service for development: DATABASE_URL, else an embedded PGlite in .dev/pgdata, and\n" +
    "NATS_URL, else in-process fan-out; a JWT secret and admin token kept in .dev/secrets.json;\n" +
    "prints a sample chat with a token and a demo page link per side. Settings: README.md",
);
const secrets = await devSecretsOrExit();
const env = overDefaults({}, Deno.env.toObject());
// tokens of an issuer of one's own (as seed takes them): the development secret would be a second
// key, which the configuration refuses, naming a JWT_SECRET nobody set
const ownIssuer = env.JWT_PUBLIC_KEY !== undefined || env.JWT_JWKS_URL !== undefined;
const config = configOrExit(() =>
  requireWritableDataDir(loadConfig(overDefaults({
    ...(ownIssuer ? {} : { JWT_SECRET: secrets.JWT_SECRET }),
    GRPC_ADMIN_TOKEN: secrets.GRPC_ADMIN_TOKEN,
    DEMO_PAGE: "1",
  }, env)))
);
await configureLogging(config.LOG_LEVEL);
let service: RunningService;
try {
  service = await startService(config);
} catch (error) {
  refused(error);
}
const customer = "customer-1";
const vendor = "vendor-1";
const chat = await service.chat.createChat(customer, vendor);
const base = `ws://localhost:${service.port}`;
const header = `
chat service (development) on http://localhost:${service.port}
  database: ${config.DATABASE_URL ? "DATABASE_URL" : `embedded PGlite in ${config.DATA_DIR}`}
  fan-out:  ${config.NATS_URL ? "NATS" : "in-process"}
  secrets:  .dev/secrets.json (development only)
  gRPC:     ${
  service.grpcPort === null
    ? "off (GRPC_ENABLED=0)"
    : `localhost:${service.grpcPort} (token: GRPC_ADMIN_TOKEN in .dev/secrets.json)`
}

sample chat ${chat.id} between ${customer} (customer) and ${vendor} (vendor)`;
if (config.JWT_SECRET === undefined) {
  const issuerKey = config.JWT_PUBLIC_KEY ? "JWT_PUBLIC_KEY" : "JWT_JWKS_URL";
  console.log(`${header}
  sockets: ${base}/v1/ws/chat/${chat.id}/ and ${base}/v1/ws/chats/
  ${issuerKey} is configured: sign tokens with your issuer
`);
} else {
  const ttl = 24 * 3600;
  const [customerToken, vendorToken] = await Promise.all([
    signDevToken(config.JWT_SECRET, customer, { ttlSeconds: ttl, ...checkedClaims(config) }),
    signDevToken(config.JWT_SECRET, vendor, { ttlSeconds: ttl, ...checkedClaims(config) }),
  ]);
  console.log(`${header}
  ${customer}: ${base}/v1/ws/chat/${chat.id}/?token=${customerToken}
  ${vendor}:   ${base}/v1/ws/chat/${chat.id}/?token=${vendorToken}
  all chats of ${customer}: ${base}/v1/ws/chats/?token=${customerToken}

try: {"action":"send_message","receiver_id":"${vendor}","media_type":"text","content":"hi","request_id":"1"}
more tokens: deno task token <user_id>; demo users and chats: deno task seed
${
    config.DEMO_PAGE
      ? `
demo page (open each link in a tab of its own and chat with yourself):
  ${customer}: http://localhost:${service.port}/#token=${customerToken}
  ${vendor}:   http://localhost:${service.port}/#token=${vendorToken}
`
      : ""
  }`);
}

// the first Ctrl-C stops the service; a second ends the process at once (exit 130)
listenForStopSignals();
onStopSignals(async () => {
  await service.close();
  Deno.exit(0);
}, () => console.error("second signal: exiting without finishing the shutdown"));
