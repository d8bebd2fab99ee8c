import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { ConfigError, loadConfig } from "./config.ts";
import { startTlsFront } from "./grpc/tls_front.ts";
import { type CertificateAndKey, createCertificate } from "./tests/support/tls_certificates.ts";

const valid = {
  JWT_SECRET: "0123456789abcdef0123456789abcdef",
  GRPC_ADMIN_TOKEN: "admin-token-0123456789",
};

Deno.test("loadConfig refuses a GRPC_TLS_CERT or GRPC_TLS_KEY path that names no PEM file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cert: pem, key } = await createCertificate();
    await Deno.writeTextFile(`${dir}/cert.pem`, pem);
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a certificate");
    const tls = (cert: string, key: string) =>
      loadConfig({ ...valid, GRPC_TLS_CERT: cert, GRPC_TLS_KEY: key });
    assert.throws(
      () => tls(`${dir}/missing.pem`, key),
      new RegExp(`^ConfigError: invalid configuration: GRPC_TLS_CERT: no file ${dir}/missing.pem$`),
    );
    // the key's value is not quoted (see the next test)
    assert.throws(
      () => tls(`${dir}/cert.pem`, `${dir}/missing.pem`),
      /^ConfigError: invalid configuration: GRPC_TLS_KEY: no PEM, nor a file$/,
    );
    assert.throws(
      () => tls(`${dir}/cert.pem`, `${dir}/notes.txt`),
      /^ConfigError: invalid configuration: GRPC_TLS_KEY: the file it names holds no PEM$/,
    );
    assert.throws(
      () => tls(`${dir}/notes.txt`, key),
      new RegExp(
        `^ConfigError: invalid configuration: GRPC_TLS_CERT: ${dir}/notes.txt holds no PEM$`,
      ),
    );
    // PEM text as it is, or a file that holds it
    assert.equal(tls(`${dir}/cert.pem`, key).GRPC_TLS_CERT, `${dir}/cert.pem`);
    assert.equal(tls(pem, key).GRPC_TLS_KEY, key.trim());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig never quotes a GRPC_TLS_KEY that is no PEM: it may be the key itself, encoded", async () => {
  // a key handed over base64-encoded (as Kubernetes secrets hold it) reads as no PEM, and as a
  // path that names no file; the line that refuses it goes to the logs
  const key = btoa(
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGx0c2tleXNlY3JldA==\n" +
      "-----END PRIVATE KEY-----\n",
  );
  const { cert: pem } = await createCertificate();
  assert.throws(
    () => loadConfig({ ...valid, GRPC_TLS_CERT: pem, GRPC_TLS_KEY: key }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^invalid configuration: GRPC_TLS_KEY: /);
      assert.ok(!error.message.includes(key.slice(0, 16)), error.message);
      return true;
    },
  );
});

/** Whether the gRPC plane's TLS front starts with `cert` and `key`. */
async function tlsFrontTakes({ cert, key }: CertificateAndKey): Promise<boolean> {
  try {
    const front = startTlsFront({
      host: "127.0.0.1",
      port: 0,
      cert,
      key,
      upstreamPort: 1,
    });
    await front.close();
    return true;
  } catch {
    return false;
  }
}

/** `key` (PKCS#8 PEM) in another PEM encoding of the same key. */
function reencoded(key: string, type: "pkcs1" | "sec1"): string {
  return String(createPrivateKey(key).export({ type, format: "pem" }));
}

/** loadConfig's refusal of the `name` case's `cert` and `key`, checked to be one line. */
function refusal(name: string, { cert, key }: CertificateAndKey): string {
  try {
    loadConfig({ ...valid, GRPC_TLS_CERT: cert, GRPC_TLS_KEY: key });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.ok(!error.message.includes("\n"), error.message);
    return error.message;
  }
  assert.fail(`${name}: loadConfig took it`);
}

Deno.test("loadConfig takes the certificates and keys the TLS front takes: EC, RSA, Ed25519; PKCS#8, PKCS#1, SEC1 keys; a chain", async () => {
  const [ec, rsa, ed25519, issuer] = await Promise.all(
    (["ec", "rsa", "ed25519", "rsa"] as const).map((kind) => createCertificate(kind)),
  );
  const cases: Record<string, CertificateAndKey> = {
    "EC, PKCS#8": ec!,
    "EC, SEC1": { cert: ec!.cert, key: reencoded(ec!.key, "sec1") },
    "RSA, PKCS#8": rsa!,
    "RSA, PKCS#1": { cert: rsa!.cert, key: reencoded(rsa!.key, "pkcs1") },
    "Ed25519": ed25519!,
    "EC P-384": await createCertificate("p384"),
    "EC P-521": await createCertificate("p521"),
    "RSA 4096": await createCertificate("rsa4096"),
    "a chain, the leaf first": await createCertificate("ec", { issuer: issuer! }),
  };
  for (const [name, pair] of Object.entries(cases)) {
    assert.ok(await tlsFrontTakes(pair), `${name}: the TLS front refuses it`);
    const config = loadConfig({ ...valid, GRPC_TLS_CERT: pair.cert, GRPC_TLS_KEY: pair.key });
    assert.equal(config.GRPC_TLS_KEY, pair.key.trim(), name);
  }
});

Deno.test("loadConfig refuses a GRPC_TLS_CERT that holds no certificate, or a broken one, naming it in one line", async () => {
  const { cert, key } = await createCertificate();
  const [leaf] = cert.split("-----END CERTIFICATE-----");
  const cases: Array<[string, CertificateAndKey, RegExp]> = [
    ["empty", {
      cert: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
      key,
    }, /^invalid configuration: GRPC_TLS_CERT: certificate 1 in its PEM is broken: /],
    ["cut short", {
      cert: `${leaf!.slice(0, -40)}\n-----END CERTIFICATE-----\n`,
      key,
    }, /^invalid configuration: GRPC_TLS_CERT: certificate 1 in its PEM is broken: /],
    [
      "a key",
      { cert: key, key },
      /^invalid configuration: GRPC_TLS_CERT: its PEM holds no CERTIFICATE$/,
    ],
  ];
  for (const [name, pair, expected] of cases) {
    assert.equal(await tlsFrontTakes(pair), false, `${name}: the TLS front takes it`);
    assert.match(refusal(name, pair), expected, name);
  }
  // the front starts with a broken certificate after the leaf, but no client could check the chain
  const brokenChain = {
    cert: `${cert}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`,
    key,
  };
  assert.match(
    refusal("a broken second certificate", brokenChain),
    /^invalid configuration: GRPC_TLS_CERT: certificate 2 in its PEM is broken: /,
  );
});

Deno.test("loadConfig refuses a GRPC_TLS_KEY the TLS front cannot use, or not the certificate's, without quoting it", async () => {
  const [ec, rsa] = await Promise.all([createCertificate("ec"), createCertificate("rsa")]);
  const issuer = await createCertificate("ec");
  const chain = await createCertificate("ec", { issuer });
  const encrypted = String(
    createPrivateKey(ec.key).export({
      type: "pkcs8",
      format: "pem",
      cipher: "aes-256-cbc",
      passphrase: "secret",
    }),
  );
  const unusable = /^invalid configuration: GRPC_TLS_KEY: its PEM holds no private key /;
  const notTheCertificates =
    /^invalid configuration: GRPC_TLS_KEY: is not the key of GRPC_TLS_CERT's first certificate$/;
  const cases: Array<[string, CertificateAndKey, RegExp]> = [
    [
      "empty",
      { cert: ec.cert, key: "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n" },
      unusable,
    ],
    ["a certificate", { cert: ec.cert, key: ec.cert }, unusable],
    ["encrypted", { cert: ec.cert, key: encrypted }, unusable],
    ["another EC key", { cert: ec.cert, key: issuer.key }, notTheCertificates],
    ["an RSA key for an EC certificate", { cert: ec.cert, key: rsa.key }, notTheCertificates],
    ["the issuer's key for a chain", { cert: chain.cert, key: issuer.key }, notTheCertificates],
    // read by node:crypto, and the certificate's, but of a kind or size the TLS front refuses
    ...await Promise.all(
      (["rsa1024", "rsa-pss", "secp256k1", "ed448"] as const).map(async (kind) =>
        [kind, await createCertificate(kind), unusable] as [string, CertificateAndKey, RegExp]
      ),
    ),
  ];
  for (const [name, pair, expected] of cases) {
    assert.equal(await tlsFrontTakes(pair), false, `${name}: the TLS front takes it`);
    const message = refusal(name, pair);
    assert.match(message, expected, name);
    for (const line of pair.key.split("\n").filter((line) => line && !line.startsWith("-----"))) {
      assert.ok(!message.includes(line), `${name}: the key is quoted: ${message}`);
    }
  }
});
