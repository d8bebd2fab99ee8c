/** The NATS client's connection options that NATS_URL gives. */
export interface NatsServers {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
}

/**
 * NATS_URL (one URL or several, comma-separated) as the NATS client takes it. The client drops
 * a URL's user info, so `nats://user:password@host` or `nats://token@host` would connect
 * without credentials and be refused: they are taken out of the URLs and given as options (a
 * user without a password is a token, as NATS reads it). The client has one set of credentials
 * for all servers, so URLs with different ones are an Error (a setting config.ts refuses).
 */
export function natsServers(value: string): NatsServers {
  let credentials: Omit<NatsServers, "servers"> | undefined;
  let seenWith = "";
  const servers = value.split(",").map((part) => part.trim()).filter((part) => part !== "")
    .map((server) => {
      const url = parsed(server);
      if (!url || (!url.username && !url.password)) return server;
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
  return { servers, ...credentials };
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
