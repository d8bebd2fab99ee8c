import type { TlsPair, TlsProblem } from "../config_tls.ts";
import { errorFields, logger } from "../observability/log.ts";
import { certificateDates } from "./certificate_expiry.ts";

export const CERTIFICATE_RENEWED = "the gRPC TLS certificate was renewed";
export const RENEWAL_REFUSED =
  "the gRPC TLS files changed, but the new pair cannot be served: the one before is served";

/**
 * Reads GRPC_TLS_CERT and GRPC_TLS_KEY's files again every `everyMs` and hands a changed pair to
 * `renew` (a certificate renewed by cert-manager, certbot or a secret's update is served without
 * a restart). A pair that cannot be served, as when the certificate was written and its key not
 * yet, is warned of once and the one before kept; the next reading tries again. Only what two
 * readings in a row agree on is served or warned of: a file read while it is being written (a
 * chain's leaf there and its issuer not yet, a key emptied and not yet filled) reads otherwise at
 * the next. `renew` throws when the TLS front refuses the pair; it is tried again at each
 * reading, warned of once.
 */
export function followCertificateRenewal(options: {
  served: TlsPair;
  /** Rejects once `signal` is aborted (the follow stopped). */
  read: (signal: AbortSignal) => Promise<TlsPair | TlsProblem>;
  renew: (pair: TlsPair) => void;
  everyMs: number;
}): { stop(): Promise<void> } {
  const log = logger("grpc");
  let served = options.served;
  /** The last pair refused, so that it is warned of once, not at every reading. */
  let refused: TlsPair | TlsProblem | undefined;
  /** The reading before, which this one must agree with to be acted on. */
  let previous: TlsPair | TlsProblem | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** The reading under way, awaited by `stop`. */
  let reading: Promise<void> | undefined;
  const stopping = new AbortController();
  const stopped = () => stopping.signal.aborted;
  /** One reading, then the next `everyMs` after it: readings never overlap. */
  function readLater() {
    timer = setTimeout(() => {
      reading = options.read(stopping.signal)
        .then((read) => {
          if (!stopped()) take(read);
        })
        // nothing here should throw; if it does, the next reading must still come
        .catch((error) => {
          if (!stopped()) log.error("reading the gRPC TLS files again failed", errorFields(error));
        })
        .finally(() => {
          if (!stopped()) readLater();
        });
    }, options.everyMs);
  }
  function take(read: TlsPair | TlsProblem) {
    const settled = sameReading(read, previous);
    previous = read;
    if (!settled) return;
    if ("variable" in read) {
      if (!sameReading(read, refused)) log.warn(RENEWAL_REFUSED, { [read.variable]: read.message });
      refused = read;
      return;
    }
    if (sameReading(read, served)) {
      // put back: a refused pair coming again is news, warned of again
      refused = undefined;
      return;
    }
    // tried again at every reading: the front may fail for a while (out of file descriptors)
    try {
      options.renew(read);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (!sameReading(read, refused)) log.warn(RENEWAL_REFUSED, { error: message });
      refused = read;
      return;
    }
    served = read;
    refused = undefined;
    log.info(CERTIFICATE_RENEWED, certificateDates(read.cert));
  }
  readLater();
  return {
    async stop() {
      stopping.abort();
      clearTimeout(timer);
      await reading;
    },
  };
}

function sameReading(
  a: TlsPair | TlsProblem,
  b: TlsPair | TlsProblem | undefined,
): boolean {
  if (!b) return false;
  if ("variable" in a || "variable" in b) {
    return "variable" in a && "variable" in b && a.variable === b.variable &&
      a.message === b.message;
  }
  return a.cert === b.cert && a.key === b.key;
}
