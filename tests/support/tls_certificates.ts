/** The key kinds the gRPC TLS tests try: what `openssl req -newkey` is given for each. */
const NEW_KEY = {
  ec: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
  rsa: ["-newkey", "rsa:2048"],
  ed25519: ["-newkey", "ed25519"],
  p384: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"],
  p521: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp521r1"],
  rsa4096: ["-newkey", "rsa:4096"],
  // kinds that node:crypto reads but the TLS front (rustls) cannot serve with
  rsa1024: ["-newkey", "rsa:1024"],
  "rsa-pss": ["-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048"],
  secp256k1: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
  ed448: ["-newkey", "ed448"],
} as const;

export type KeyKind = keyof typeof NEW_KEY;

/** A certificate (PEM, the leaf first when it is a chain) and its private key (PKCS#8 PEM). */
export interface CertificateAndKey {
  cert: string;
  key: string;
}

/**
 * A one-day certificate for localhost and 127.0.0.1 made by openssl: self-signed, or signed by
 * `issuer` (whose certificate then follows it, as a chain file holds them).
 */
export async function createCertificate(
  kind: KeyKind = "ec",
  options: { issuer?: CertificateAndKey } = {},
): Promise<CertificateAndKey> {
  const dir = await Deno.makeTempDir();
  try {
    const issuerArgs: string[] = [];
    if (options.issuer) {
      await Deno.writeTextFile(`${dir}/issuer.pem`, options.issuer.cert);
      await Deno.writeTextFile(`${dir}/issuer.key`, options.issuer.key);
      issuerArgs.push("-CA", `${dir}/issuer.pem`, "-CAkey", `${dir}/issuer.key`);
    }
    const { success, stderr } = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        ...NEW_KEY[kind],
        ...issuerArgs,
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) throw new Error(`openssl: ${new TextDecoder().decode(stderr)}`);
    const cert = await Deno.readTextFile(`${dir}/cert.pem`);
    return {
      cert: options.issuer ? cert + options.issuer.cert : cert,
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** openssl's form of a certificate time: YYYYMMDDHHMMSSZ. */
const opensslTime = (at: Date) => at.toISOString().replace(/[-:T]/g, "").replace(/\.\d+Z$/, "Z");

/**
 * A self-signed EC certificate for localhost and 127.0.0.1 valid from `notBefore` to `notAfter`
 * (times `openssl req -days` cannot give: one over already, or ending in seconds), made by
 * `openssl ca -selfsign`.
 */
export async function createCertificateValid(
  notBefore: Date,
  notAfter: Date,
): Promise<CertificateAndKey> {
  const dir = await Deno.makeTempDir();
  const run = async (args: string[]) => {
    const { success, stderr } = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) throw new Error(`openssl: ${new TextDecoder().decode(stderr)}`);
  };
  try {
    await Deno.writeTextFile(`${dir}/index.txt`, "");
    await Deno.writeTextFile(`${dir}/serial`, "01\n");
    await Deno.writeTextFile(
      `${dir}/ca.cnf`,
      [
        "[ca]",
        "default_ca = self",
        "[self]",
        "database = index.txt",
        "serial = serial",
        "new_certs_dir = .",
        "default_md = sha256",
        "policy = any",
        "copy_extensions = copy",
        "unique_subject = no",
        "[any]",
        "commonName = supplied",
      ].join("\n"),
    );
    await run([
      "req",
      "-new",
      ...NEW_KEY.ec,
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout",
      "key.pem",
      "-out",
      "request.pem",
    ]);
    await run([
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-selfsign",
      "-keyfile",
      "key.pem",
      "-in",
      "request.pem",
      "-startdate",
      opensslTime(notBefore),
      "-enddate",
      opensslTime(notAfter),
      "-notext",
      "-out",
      "cert.pem",
    ]);
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
