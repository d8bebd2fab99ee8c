/** Query parameter names that carry a credential, by what they are usually called. */
const CREDENTIAL_PARAMETER = /pass|secret|token|key|sig|auth|credential|code/i;

/**
 * Each URL of a comma-separated list with its credentials masked, for logs and error messages:
 * the password, with `tokenAsUser` a user without a password (NATS takes a token as
 * `nats://<token>@host`), and query parameters named as credentials.
 */
export function redactUrls(value: string, options: { tokenAsUser: boolean }): string {
  return value.split(",").map((part) => redactUrl(part.trim(), options)).join(",");
}

/** One URL (or NATS server) with its credentials masked, as {@link redactUrls} masks each. */
function redactUrl(text: string, options: { tokenAsUser: boolean }): string {
  const url = URL.parse(text);
  // No URL, or none with a host: a server without its scheme (NATS takes `host:port`), such
  // as `127.0.0.1:4222` (no URL) or `user:password@host:port` (read as the scheme `user:`).
  // Whatever comes before the `@` (the last one: a host has none) may be a secret.
  if (url === null || url.host === "") {
    const at = text.lastIndexOf("@");
    return at === -1 ? text : `redacted@${text.slice(at + 1)}`;
  }
  if (url.password) url.password = "redacted";
  else if (options.tokenAsUser && url.username) url.username = "redacted";
  // a JWKS endpoint or a signed URL may carry its key in the query (`?api_key=`, `?sig=`)
  for (const name of [...url.searchParams.keys()]) {
    if (CREDENTIAL_PARAMETER.test(name)) url.searchParams.set(name, "redacted");
  }
  return url.toString();
}

/**
 * What a URL in running text looks like: a scheme and `//`, up to a blank, quote or bracket. A
 * scheme starts where no scheme character comes before it, so each run of them is scanned once:
 * with `\b`, every word of `a.a.a...` started a scan of the rest of the run (quadratic).
 */
const URL_IN_TEXT = /(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:\/\/[^\s"'`<>()[\]{}]+/gi;

/**
 * `text` (an error's message) with the credentials of every URL it quotes masked: a fetch that
 * failed names the URL it asked, query and password included.
 */
export function redactUrlsIn(text: string): string {
  return text.replace(URL_IN_TEXT, (found) => {
    const url = URL.parse(found);
    const credentials = url !== null && (url.username !== "" || url.password !== "" ||
      [...url.searchParams.keys()].some((name) => CREDENTIAL_PARAMETER.test(name)));
    // a user alone may be a token (NATS takes one so); a URL without credentials is left as written
    return credentials ? redactUrl(found, { tokenAsUser: true }) : found;
  });
}
