import type { TokenVerifier } from "../auth/verifier.ts";
import type { MediaMetrics, SocketMetrics } from "../observability/metrics.ts";
import type { ReadinessReport } from "../observability/readiness.ts";
import type { ConnectionLimits } from "./connection.ts";
import { type ConnectionRegistryDeps, createConnectionRegistry } from "./connection_registry.ts";
import { endpointOf } from "./endpoint.ts";
import { methodRefusal, READ_METHODS } from "./http_methods.ts";
import { countedLimits } from "./media_counts.ts";
import { createMediaRoutes } from "./media_routes.ts";
import type { StallLimits } from "./stalled_body.ts";
import { createRequestLimits, type RequestLimits } from "./request_limits.ts";
import { createUpgrade } from "./upgrade.ts";
import { createDemoRoutes, type DemoPageOptions } from "../demo/routes.ts";

export interface HttpDeps extends Omit<ConnectionRegistryDeps, "mediaRequests"> {
  verifier: TokenVerifier;
  readiness: () => Promise<ReadinessReport>;
  /** Prometheus text; absent: 404. */
  metrics?: () => Promise<string>;
  /** Instruments the sockets and media routes feed; absent: nothing is measured. */
  instruments?: SocketMetrics & MediaMetrics;
}

export interface HttpOptions {
  maxFrameBytes: number;
  idleTimeoutSeconds: number;
  limits: ConnectionLimits;
  /** Sockets this instance may hold at once (WS_MAX_SOCKETS); more are answered 503. */
  maxSockets: number;
  maxSocketsPerUser: number;
  /** Origins allowed to open sockets, upload media and read its answers (CORS); empty: any. */
  allowedOrigins: readonly string[];
  /** Per-user limits of the media routes on this instance; open uploads count base64 media too. */
  mediaLimits: RequestLimits;
  /** When an upload that sends too little is ended. */
  uploadStall: StallLimits;
  /** How long a download's client may take nothing before it is cut (default: a minute). */
  downloadIdleMs?: number;
  /** Serves the demo chat page at `/` (DEMO_PAGE), telling it the token's user id claim. */
  demoPage?: DemoPageOptions | false;
  /** How often the store's recent bans and disconnects are looked at (startSanctionSweeps). */
  sanctionSweepMs?: number;
}

/**
 * The HTTP side of the service: WebSocket endpoints, health and metrics. It knows
 * Request/Response and the chat service, nothing of the admin plane.
 */
export function createHttpHandler(deps: HttpDeps, options: HttpOptions) {
  // one state per user for both ways in: a base64 ingest holds as much as an upload
  const mediaRequests = createRequestLimits(options.mediaLimits, { now: deps.now });
  const connections = createConnectionRegistry({
    ...deps,
    mediaRequests: countedLimits(mediaRequests, { via: "socket", instruments: deps.instruments }),
  }, options);
  const upgrade = createUpgrade(
    { verifier: deps.verifier, connections, onError: deps.onError },
    options,
  );
  const media = createMediaRoutes({ ...deps, mediaRequests }, options);
  const demo = options.demoPage ? createDemoRoutes(deps, options.demoPage) : null;

  /** The service's own health and metrics, read-only; /metrics only when measured. */
  const opsRoutes = new Map<string, () => Response | Promise<Response>>([
    ["/healthz", () => new Response("ok\n")],
    ["/readyz", async () => {
      const report = await deps.readiness();
      return Response.json(report, { status: report.ready ? 200 : 503 });
    }],
  ]);
  const { metrics } = deps;
  if (metrics) {
    opsRoutes.set("/metrics", async () =>
      new Response(await metrics(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      }));
  }

  async function handle(request: Request, sent?: Promise<void>): Promise<Response> {
    const url = new URL(request.url);
    const endpoint = endpointOf(url.pathname);
    if (endpoint) return upgrade(request, endpoint);
    if (media.handles(url.pathname)) return await media.handle(request, url, sent);
    if (demo?.handles(url.pathname)) return await demo.handle(request, url);
    const opsRoute = opsRoutes.get(url.pathname);
    if (!opsRoute) return new Response("not found\n", { status: 404 });
    return methodRefusal(request, READ_METHODS) ?? await opsRoute();
  }

  return {
    /** The Deno.serve handler; errors become a 500 here and nowhere else. */
    async fetch(
      request: Request,
      info?: Pick<Deno.ServeHandlerInfo, "completed">,
    ): Promise<Response> {
      try {
        return await handle(request, info?.completed);
      } catch (error) {
        deps.onError(error, "http");
        return new Response("internal error\n", { status: 500 });
      }
    },
    /** Open sockets on this instance. */
    get connectionCount(): number {
      return connections.size;
    },
    /**
     * Stops the WebSocket plane gracefully: new sockets are refused (503) and the open ones
     * closed with 1012 (see the connection registry's shutdown); new uploads are refused (503)
     * and those under way are answered (see the media routes' drain).
     */
    async shutdown(signal?: AbortSignal): Promise<void> {
      // side by side with the sockets: both must be done before the server stops
      const uploads = media.drain(signal);
      await connections.shutdown(signal);
      await uploads;
    },
  };
}

export type HttpHandler = ReturnType<typeof createHttpHandler>;
