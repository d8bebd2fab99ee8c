import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "./config.ts";

const valid = {
  JWT_SECRET: "0123456789abcdef0123456789abcdef",
  GRPC_ADMIN_TOKEN: "admin-token-0123456789",
};

Deno.test("loadConfig refuses a GRPC_TLS_CERT or GRPC_TLS_KEY path that names no PEM file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pem = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
    await Deno.writeTextFile(`${dir}/cert.pem`, pem);
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a certificate");
    const tls = (cert: string, key: string) =>
      loadConfig({ ...valid, GRPC_TLS_CERT: cert, GRPC_TLS_KEY: key });
    assert.throws(
      () => tls(`${dir}/missing.pem`, pem),
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
      () => tls(`${dir}/notes.txt`, pem),
      new RegExp(
        `^ConfigError: invalid configuration: GRPC_TLS_CERT: ${dir}/notes.txt holds no PEM$`,
      ),
    );
    // PEM text as it is, or a file that holds it
    assert.equal(tls(`${dir}/cert.pem`, pem).GRPC_TLS_CERT, `${dir}/cert.pem`);
    assert.equal(tls(pem, pem).GRPC_TLS_KEY, pem.trim());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig never quotes a GRPC_TLS_KEY that is no PEM: it may be the key itself, encoded", () => {
  // a key handed over base64-encoded (as Kubernetes secrets hold it) reads as no PEM, and as a
  // path that names no file; the line that refuses it goes to the logs
  const key = btoa(
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGx0c2tleXNlY3JldA==\n" +
      "-----END PRIVATE KEY-----\n",
  );
  const pem = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
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
