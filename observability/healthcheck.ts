/**
 * The container's HEALTHCHECK: exits 0 when this instance's `/healthz` answers 200 within
 * two seconds, 1 otherwise. Liveness only: a database that is away makes the instance
 * unready (`/readyz`), not unhealthy, so Docker does not restart it for that.
 *
 * `deno run --allow-net=127.0.0.1 --allow-env=PORT observability/healthcheck.ts`
 */
const port = Deno.env.get("PORT") || "8000";
try {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`, {
    signal: AbortSignal.timeout(2_000),
  });
  await response.body?.cancel();
  Deno.exit(response.ok ? 0 : 1);
} catch {
  Deno.exit(1);
}
