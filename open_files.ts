import type { Config } from "./config.ts";
import { WRITER_LANES } from "./db/writer_lanes.ts";
import { MAX_CONNECTIONS } from "./grpc/connection_cap.ts";
import { logger } from "./observability/log.ts";

/** Logged (info) at the start when WS_MAX_SOCKETS is unset and follows from the limit. */
export const SOCKET_LIMIT_DERIVED = "WS_MAX_SOCKETS follows from the open-file limit";
/** Logged (warning) at the start when the socket limit is above what the open-file limit allows. */
export const SOCKET_LIMIT_ABOVE_OPEN_FILES =
  "WS_MAX_SOCKETS is above what the open-file limit allows: descriptors can run out before " +
  "sockets are answered 503";

/** WS_MAX_SOCKETS when it is not set and the open-file limit allows it, or cannot be told. */
export const DEFAULT_MAX_SOCKETS = 50_000;

/**
 * HTTP connections that are no sockets (media uploads and downloads, `/healthz`, `/readyz`,
 * `/metrics`): bounded per user, not per instance, so an allowance.
 */
const HTTP_REQUEST_CONNECTIONS = 64;
/** Admin plane clients' connections: the plane holds no more at once. */
const ADMIN_CONNECTIONS = MAX_CONNECTIONS;

/**
 * Descriptors the service holds besides its sockets, from its configuration: the HTTP listener
 * and HTTP_REQUEST_CONNECTIONS; the database pool, the readiness connection and the message
 * writer's lanes (both ends of each when the embedded database runs in the process); a NATS
 * connection for the bus and one for a NATS media store; a JWKS fetch; and, with the admin
 * plane, its listener, its probe's two ends and ADMIN_CONNECTIONS (with the TLS front, its public
 * TCP listener and its TLS listener on loopback, and five descriptors per connection: the public
 * one, both ends of its relay to the TLS listener, and both ends of the TLS side's relay to
 * grpc-js; see grpc/tls_front.ts).
 */
export function descriptorReserve(config: Config): number {
  const database = (config.DATABASE_POOL_SIZE + 1 + WRITER_LANES) * (config.DATABASE_URL ? 1 : 2);
  const nats = (config.NATS_URL ? 1 : 0) + (config.MEDIA_BACKEND === "nats" ? 1 : 0);
  const tls = config.GRPC_TLS_CERT !== undefined;
  const admin = config.GRPC_ENABLED ? (tls ? 3 : 1) + 2 + ADMIN_CONNECTIONS * (tls ? 5 : 1) : 0;
  const http = 1 + HTTP_REQUEST_CONNECTIONS;
  const jwks = 1;
  return http + database + nats + jwks + admin;
}

/**
 * File descriptors this process may still open, counted up to `upTo` by opening /dev/null until
 * the open-file limit refuses one (EMFILE), then closing them all: Deno lets a process read its
 * limit (/proc/self/limits) only with --allow-all. Counted before the service opens anything,
 * so what the runtime holds already is left out. Undefined where /dev/null cannot be opened (not
 * Unix, or no read permission for it): the limit cannot be told.
 */
export function countFreeDescriptors(upTo: number): number | undefined {
  const opened: Deno.FsFile[] = [];
  try {
    while (opened.length < upTo) opened.push(Deno.openSync("/dev/null"));
    return upTo;
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "EMFILE") {
      return opened.length;
    }
    return undefined;
  } finally {
    for (const file of opened) file.close();
  }
}

/**
 * Sockets counted room for at most, whatever WS_MAX_SOCKETS says: each descriptor counted is a
 * moment of the start and some memory until it is closed (about a second per 100,000).
 */
const MOST_SOCKETS_COUNTED = 200_000;

/** The descriptors worth counting for `config`: more would not change its socket limit. */
export function descriptorsToCount(config: Config): number {
  const sockets = Math.min(config.WS_MAX_SOCKETS ?? DEFAULT_MAX_SOCKETS, MOST_SOCKETS_COUNTED);
  return sockets + descriptorReserve(config);
}

export interface SocketLimit {
  /** The sockets the instance holds at most: WS_MAX_SOCKETS, or its default. */
  max: number;
  /**
   * Sockets the open-file limit leaves room for (can be 0 or less), or at least, when every
   * descriptor counted (descriptorsToCount) was free; undefined: unknown.
   */
  allowed: number | undefined;
  /** Whether `max` is above what the limit leaves room for: descriptors can run out first. */
  aboveOpenFileLimit: boolean;
  /** Descriptors kept for the rest (descriptorReserve). */
  reserve: number;
  /** Whether `max` was derived from the limit, WS_MAX_SOCKETS being unset. */
  derived: boolean;
}

/**
 * WS_MAX_SOCKETS, or when it is unset the sockets that `freeDescriptors` (countFreeDescriptors)
 * leave room for besides the reserve, at least 1 and at most DEFAULT_MAX_SOCKETS; that default
 * itself when the free descriptors are unknown.
 */
export function socketLimit(config: Config, freeDescriptors: number | undefined): SocketLimit {
  const reserve = descriptorReserve(config);
  if (freeDescriptors === undefined) {
    const max = config.WS_MAX_SOCKETS ?? DEFAULT_MAX_SOCKETS;
    return { max, allowed: undefined, aboveOpenFileLimit: false, reserve, derived: false };
  }
  const allowed = freeDescriptors - reserve;
  const derived = config.WS_MAX_SOCKETS === undefined;
  const max = config.WS_MAX_SOCKETS ?? Math.max(1, Math.min(DEFAULT_MAX_SOCKETS, allowed));
  // when every descriptor counted was free, the limit may leave room for more than `allowed`
  const limitReached = freeDescriptors < descriptorsToCount(config);
  return { max, allowed, aboveOpenFileLimit: limitReached && max > allowed, reserve, derived };
}

/**
 * Says where the socket limit comes from when it was derived, and warns when it is above what the
 * open-file limit allows: past that, descriptors run out before sockets are answered 503.
 */
export function reportSocketLimit(sockets: SocketLimit, freeDescriptors: number | undefined) {
  const figures = {
    ws_max_sockets: sockets.max,
    allowed_by_open_file_limit: sockets.allowed,
    free_descriptors: freeDescriptors,
    reserved_descriptors: sockets.reserve,
  };
  if (sockets.derived) logger().info(SOCKET_LIMIT_DERIVED, figures);
  if (sockets.aboveOpenFileLimit) {
    logger().warn(SOCKET_LIMIT_ABOVE_OPEN_FILES, figures);
  }
}
