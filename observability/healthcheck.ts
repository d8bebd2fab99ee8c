/**
 * The container's HEALTHCHECK: exits 0 when this instance's `/healthz` answers 200 within
 * two seconds, 1 otherwise. Liveness only: a database that is away makes the instance
 * unready (`/readyz`), not unhealthy, so Docker does not restart it for that.
 *
 * It asks where the service listens: HOST and PORT, as the container's environment has them
 * (the service's defaults when unset or empty; PORT read as a number, as the service reads it);
 * loopback when HOST is every address (0.0.0.0, ::), the address itself when it is one (an
 * instance bound to one interface does not answer on 127.0.0.1). HOST may be a host name: hence
 * `--allow-net` without a list.
 *
 * `deno run --allow-net --allow-env=HOST,PORT observability/healthcheck.ts`
 */
export function healthzUrl(env: { HOST?: string | undefined; PORT?: string | undefined }): string {
  // read as config.ts reads it (blanks around it, `9000.0`): the service listens there
  const port = env.PORT?.trim() ? Number(env.PORT.trim()) : 8000;
  const host = env.HOST || "0.0.0.0";
  // IPv6 in brackets, and written as URLs write it (`0::0` is `[::]`)
  const named = host.includes(":") ? new URL(`http://[${host}]/`).hostname : host;
  const asked = named === "0.0.0.0" ? "127.0.0.1" : named === "[::]" ? "[::1]" : named;
  return `http://${asked}:${port}/healthz`;
}

if (import.meta.main) {
  try {
    const url = healthzUrl({ HOST: Deno.env.get("HOST"), PORT: Deno.env.get("PORT") });
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    Deno.exit(response.ok ? 0 : 1);
  } catch {
    Deno.exit(1);
  }
}
