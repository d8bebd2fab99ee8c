/**
 * Each URL of a comma-separated list with its credentials masked, for logs and error messages:
 * the password, and with `tokenAsUser` a user without a password (NATS takes a token as
 * `nats://<token>@host`).
 */
export function redactUrls(value: string, options: { tokenAsUser: boolean }): string {
  return value.split(",").map((part) => {
    try {
      const url = new URL(part.trim());
      if (url.password) url.password = "redacted";
      else if (options.tokenAsUser && url.username) url.username = "redacted";
      return url.toString();
    } catch {
      return "[unparseable]";
    }
  }).join(",");
}
