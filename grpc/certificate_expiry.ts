import { X509Certificate } from "node:crypto";
import { logger } from "../observability/log.ts";

/** The longest delay a timer takes (2^31 - 1 ms, 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const CERTIFICATE_EXPIRED =
  "the gRPC TLS certificate has expired: TLS clients refuse it; put a new one in GRPC_TLS_CERT " +
  "and GRPC_TLS_KEY's files (read again every GRPC_TLS_RELOAD_SECONDS), or set new ones and restart";
export const CERTIFICATE_NOT_YET_VALID =
  "the gRPC TLS certificate is not valid yet: TLS clients refuse it until then";

/**
 * Says when the certificate the TLS front serves (the first of `pem`) cannot be taken by any
 * client: a warning at the start if it has expired or is not valid yet, and one when it expires
 * while the plane runs. The front serves it all the same (the settings check does not refuse
 * it: an admin plane certificate past its date must not stop the WebSocket plane), and clients
 * only say "certificate has expired" on their side, so without these lines the operator of the
 * service would have nothing to go on. `stop` ends the wait.
 */
export function followCertificateExpiry(pem: string): { stop(): void } {
  const log = logger("grpc");
  const dates = certificateDates(pem);
  // the settings check has read it already; nothing to follow without one
  if (!dates) return { stop() {} };
  const notBefore = Date.parse(dates.not_before);
  const notAfter = Date.parse(dates.not_after);
  const now = Date.now();
  if (now > notAfter) {
    log.warn(CERTIFICATE_EXPIRED, dates);
    return { stop() {} };
  }
  if (now < notBefore) log.warn(CERTIFICATE_NOT_YET_VALID, dates);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wait = () => {
    const left = notAfter - Date.now();
    if (left >= 0) {
      // a second past it: clients take a certificate up to and including its last second
      timer = setTimeout(wait, Math.min(left + 1_000, MAX_TIMER_MS));
      Deno.unrefTimer(timer as unknown as number);
      return;
    }
    timer = undefined;
    log.warn(CERTIFICATE_EXPIRED, dates);
  };
  wait();
  return {
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** When the first certificate of `pem` starts and ends being valid, as log fields. */
export function certificateDates(
  pem: string,
): { not_before: string; not_after: string } | undefined {
  const block = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/);
  if (!block) return undefined;
  const certificate = new X509Certificate(block[0]);
  return {
    not_before: new Date(Date.parse(certificate.validFrom)).toISOString(),
    not_after: new Date(Date.parse(certificate.validTo)).toISOString(),
  };
}
