const SECRETS_FILE = ".dev/secrets.json";

export interface DevSecrets {
  JWT_SECRET: string;
  GRPC_ADMIN_TOKEN: string;
}

const random = (bytes: number) =>
  crypto.getRandomValues(new Uint8Array(bytes)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });

/** Development-only secrets: generated on first use, kept in .dev/ (git-ignored). */
export async function devSecrets(): Promise<DevSecrets> {
  try {
    return JSON.parse(await Deno.readTextFile(SECRETS_FILE)) as DevSecrets;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const secrets = { JWT_SECRET: random(32), GRPC_ADMIN_TOKEN: random(24) };
  await Deno.mkdir(".dev", { recursive: true });
  await Deno.writeTextFile(SECRETS_FILE, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}
