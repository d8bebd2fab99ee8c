/**
 * Whether a request from `origin` may be served: ALLOWED_ORIGINS, one rule for the upgrade and
 * the media routes. No Origin (not a browser's cross-origin request) and an empty list: any.
 */
export function originAllowed(allowedOrigins: readonly string[], origin: string | null): boolean {
  return !origin || allowedOrigins.length === 0 || allowedOrigins.includes(origin);
}
