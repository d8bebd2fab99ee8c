import type { Metadata } from "@grpc/grpc-js";
import { createHash, timingSafeEqual } from "node:crypto";

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

/**
 * Checks the `authorization: Bearer <token>` metadata of a call against the admin token. The
 * SHA-256 digests are compared, in constant time, so neither the length nor any prefix of the
 * token leaks through timing. Throws a plain Error on an empty token: the plane never runs
 * without one.
 */
export function createTokenCheck(adminToken: string): (metadata: Metadata) => boolean {
  if (adminToken.length === 0) {
    throw new Error("the gRPC admin plane needs GRPC_ADMIN_TOKEN (or GRPC_ENABLED=0)");
  }
  const expected = digest(adminToken);
  return (metadata) => {
    const values = metadata.get("authorization");
    // Exactly one header: two would leave it to chance which one a proxy or we would read.
    if (values.length !== 1 || typeof values[0] !== "string") return false;
    const match = BEARER.exec(values[0]);
    return timingSafeEqual(digest(match?.[1] ?? ""), expected) && match !== null;
  };
}
