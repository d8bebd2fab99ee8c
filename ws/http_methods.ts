/** The methods of a route that only reads; Deno.serve answers HEAD without the body. */
export const READ_METHODS = "GET, HEAD";

/**
 * Null when `request`'s method is one of `allowed` (as an Allow header lists them: "GET, HEAD");
 * otherwise the 405 to answer, whose Allow header names them, as RFC 9110 asks.
 */
export function methodRefusal(request: Request, allowed: string): Response | null {
  if (allowed.split(", ").includes(request.method)) return null;
  return new Response("method not allowed\n", { status: 405, headers: { allow: allowed } });
}
