/** The NATS client's connection options that NATS_URL gives. */
export interface NatsServers {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  /** Set (to the defaults) when the servers are `tls://`: the client then refuses one without. */
  tls?: Record<string, never>;
}

/** The schemes the NATS client connects with: TCP, or TCP that must turn TLS. */
const SCHEMES: ReadonlySet<string> = new Set(["nats:", "tls:"]);

/**
 * NATS_URL (one URL or several, comma-separated) as the NATS client takes it. The client drops
 * a URL's user info, so `nats://user:password@host` or `nats://token@host` would connect
 * without credentials and be refused: they are taken out of the URLs and given as options (a
 * user without a password is a token, as NATS reads it). The client has one set of credentials
 * for all servers, so URLs with different ones are an Error (a setting config.ts refuses), and
 * so is a list without a server, or a server the client could not connect to: no host, a port
 * that is none, a scheme other than `nats://` or `tls://` (the client would drop it and speak
 * NATS to, say, an `http://` or `ws://` port). The client goes on in the clear with a server that
 * offers no TLS, credentials and all, unless told to require it: `tls://` servers require it, and
 * a list that mixes them with others is an Error. No Error shows the value, which may hold secrets.
 */
export function natsServers(value: string): NatsServers {
  let credentials: Omit<NatsServers, "servers"> | undefined;
  let seenWith = "";
  let secure = 0;
  const written = value.split(",").map((part) => part.trim()).filter((part) => part !== "");
  if (written.length === 0) throw new Error("names no server");
  const servers = written
    .map((server, index) => {
      const url = parsed(server);
      const which = written.length === 1 ? "the server" : `server ${index + 1}`;
      // URL takes port 0, which no server listens on: the client would try it for ever
      if (!url || url.port === "0") {
        throw new Error(`${which} is no [scheme://]host[:port] with a port of 1-65535`);
      }
      if (!SCHEMES.has(url.protocol)) {
        throw new Error(`${which} has the scheme ${url.protocol}// (NATS takes nats:// or tls://)`);
      }
      if (!url.hostname) throw new Error(`${which} names no host`);
      if (url.protocol === "tls:") secure += 1;
      if (!url.username && !url.password) return server;
      const user = decodeURIComponent(url.username);
      const found = url.password
        ? { user, pass: decodeURIComponent(url.password) }
        : { token: user };
      const key = JSON.stringify(found);
      if (credentials && key !== seenWith) {
        throw new Error("every server must have the same credentials");
      }
      credentials = found;
      seenWith = key;
      url.username = "";
      url.password = "";
      return url.toString().replace(/\/$/, "");
    });
  if (secure > 0 && secure < servers.length) {
    throw new Error("every server must be tls:// if one is (TLS is required of all or none)");
  }
  return { servers, ...credentials, ...(secure > 0 ? { tls: {} } : {}) };
}

/**
 * The server as a URL, or undefined. NATS also takes `host:port` without a scheme, and
 * `user:password@host:port` with it, which as they are read as the scheme `user:`: such a
 * server is read as a `nats://` URL, so that its credentials are found too.
 */
function parsed(server: string): URL | undefined {
  try {
    return new URL(server.includes("://") ? server : `nats://${server}`);
  } catch {
    return undefined;
  }
}
