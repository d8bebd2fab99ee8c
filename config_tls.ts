import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";

/**
 * GRPC_TLS_CERT or GRPC_TLS_KEY as PEM text: the value itself when it is PEM, else the text of
 * the file it names. Throws Deno's error when the file cannot be read.
 */
export function tlsPem(value: string): string {
  return isPemText(value) ? value : Deno.readTextFileSync(value);
}

/** Whether a GRPC_TLS_* value (or a text read for one) is PEM, not a path. */
export const isPemText = (value: string): boolean => value.includes("-----BEGIN");

/**
 * GRPC_TLS_CERT and GRPC_TLS_KEY read again (their files may have been renewed), checked as
 * tlsProblem checks them; or why the pair read cannot be served. The texts read are what is
 * checked: a file replaced between a check and a reading would otherwise go unchecked. Read
 * without blocking: a file system that hangs (or a FIFO) holds this reading, not the event loop,
 * until `signal` ends it.
 */
export async function readTlsPair(
  cert: string,
  key: string,
  signal: AbortSignal,
): Promise<TlsPair | TlsProblem> {
  const [certText, keyText] = await Promise.all([cert, key].map(async (value) => {
    if (isPemText(value)) return value;
    try {
      return await Deno.readTextFile(value, { signal });
    } catch {
      return undefined;
    }
  }));
  signal.throwIfAborted();
  // unreadable, emptied or half written: tlsProblem says why as the settings check does (it
  // would take a text without PEM for a path)
  if (!certText || !keyText || !isPemText(certText) || !isPemText(keyText)) {
    return tlsProblem(cert, key) ?? CHANGED_WHILE_READ;
  }
  return tlsProblem(certText, keyText) ?? { cert: certText, key: keyText };
}

/** A certificate (PEM, leaf first) and its private key (PEM). */
export interface TlsPair {
  cert: string;
  key: string;
}

const CHANGED_WHILE_READ: TlsProblem = {
  variable: "GRPC_TLS_CERT",
  message: "its files changed while they were read; read again at the next reading",
};

/** A refused GRPC_TLS_* setting: the variable, and why, in one line. */
export interface TlsProblem {
  variable: "GRPC_TLS_CERT" | "GRPC_TLS_KEY";
  message: string;
}

/**
 * Why the gRPC plane's TLS front could not start with `cert` and `key` (GRPC_TLS_CERT and
 * GRPC_TLS_KEY, each PEM text or a file path); undefined when it can. Checked with the
 * settings, so that an unreadable file, a broken certificate or key, or a key that is not the
 * certificate's stops the start as a bad setting, before the database is touched (else it
 * would stop it only when the admin plane starts, after the migrations). The key is never
 * quoted, nor its path: what is no PEM may still be the key, encoded (base64, as Kubernetes
 * secrets hold it), and the line goes to the logs.
 */
export function tlsProblem(cert: string, key: string): TlsProblem | undefined {
  const certPem = readPem(cert, false);
  if ("problem" in certPem) return { variable: "GRPC_TLS_CERT", message: certPem.problem };
  const leaf = firstCertificate(certPem.pem, certPem.source);
  if (typeof leaf === "string") return { variable: "GRPC_TLS_CERT", message: leaf };
  const keyPem = readPem(key, true);
  if ("problem" in keyPem) return { variable: "GRPC_TLS_KEY", message: keyPem.problem };
  const privateKey = usablePrivateKey(keyPem.pem);
  if (!privateKey) {
    return {
      variable: "GRPC_TLS_KEY",
      message: `${keyPem.source} holds no private key the TLS front can use (unencrypted ` +
        "PKCS#8, PKCS#1 or SEC1 PEM of an RSA key of 2048 to 8192 bits, an EC key on P-256, " +
        "P-384 or P-521, or an Ed25519 key)",
    };
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    return {
      variable: "GRPC_TLS_KEY",
      message: "is not the key of GRPC_TLS_CERT's first certificate",
    };
  }
  return undefined;
}

/**
 * The PEM text of a GRPC_TLS_* value, and how a message names where it came from; or why there
 * is none. A `secret` value's path is not quoted either.
 */
function readPem(
  value: string,
  secret: boolean,
): { pem: string; source: string } | { problem: string } {
  const file = secret ? "the file it names" : value;
  const source = isPemText(value) ? "its PEM" : file;
  try {
    const pem = tlsPem(value);
    return isPemText(pem) ? { pem, source } : { problem: `${file} holds no PEM` };
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      return {
        problem: `cannot read ${file}: \`deno task start\` reads files under /run/secrets only`,
      };
    }
    if (error instanceof Deno.errors.NotFound) {
      return { problem: secret ? "no PEM, nor a file" : `no file ${value}` };
    }
    // Deno's messages quote the path
    if (secret) return { problem: `cannot read ${file} (${errorText(error, "name")})` };
    return { problem: `cannot read ${value}: ${errorText(error, "message")}` };
  }
}

/**
 * The first certificate of `pem` (the one served, whose key GRPC_TLS_KEY must be), every
 * certificate in it read; or why it cannot be. A broken one after the first does not stop the
 * front from starting, but no client could check the chain it sends.
 */
function firstCertificate(pem: string, source: string): X509Certificate | string {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (!blocks) return `${source} holds no CERTIFICATE`;
  const certificates: X509Certificate[] = [];
  for (const [index, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block));
    } catch (error) {
      return `certificate ${index + 1} in ${source} is broken: ${errorText(error, "message")}`;
    }
  }
  return certificates[0]!;
}

/**
 * The curves of EC keys the TLS front (rustls) signs with; node:crypto reads others too
 * (secp256k1), which the front refuses at its start.
 */
const FRONT_CURVES: ReadonlySet<string> = new Set(["prime256v1", "secp384r1", "secp521r1"]);

/**
 * The first private key block of `pem`, as the TLS front takes it (PKCS#8, PKCS#1 RSA, SEC1
 * EC; other blocks beside it are passed over); undefined when there is none it can use. An
 * encrypted key is not opened: the front has no passphrase. Nor is a key the front cannot sign
 * with, though node:crypto reads it (RSA under 2048 or over 8192 bits, RSA-PSS, Ed448, another
 * curve): it would stop the start only once the database is migrated, exit 1, again and again.
 */
function usablePrivateKey(pem: string): KeyObject | undefined {
  const block = pem.match(/-----BEGIN ((?:RSA |EC )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/);
  if (!block || block[0].includes("ENCRYPTED")) return undefined;
  let key: KeyObject;
  try {
    key = createPrivateKey(block[0]);
  } catch {
    // node:crypto's messages say nothing of the key, but nothing of it is worth the risk
    return undefined;
  }
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "rsa": {
      const bits = details.modulusLength ?? 0;
      return bits >= 2048 && bits <= 8192 ? key : undefined;
    }
    case "ec":
      return FRONT_CURVES.has(details.namedCurve ?? "") ? key : undefined;
    case "ed25519":
      return key;
    default:
      return undefined;
  }
}

/** An error's name or message, on one line. */
function errorText(error: unknown, part: "name" | "message"): string {
  if (!(error instanceof Error)) return part === "name" ? "error" : String(error);
  return error[part].replaceAll(/\s+/g, " ");
}
