/**
 * The environment over `deno task dev`'s defaults, a variable set but empty counting as unset
 * (as loadConfig reads it): `.env.example` ships JWT_SECRET and GRPC_ADMIN_TOKEN empty, and an
 * empty one must not replace the generated secret.
 */
export function overDefaults(
  defaults: Record<string, string>,
  env: Record<string, string>,
): Record<string, string> {
  const set = Object.entries(env).filter(([, value]) => value !== "");
  return { ...defaults, ...Object.fromEntries(set) };
}
