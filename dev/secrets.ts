const SECRETS_DIR = ".dev";
const SECRETS_FILE = `${SECRETS_DIR}/secrets.json`;

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
  await Deno.mkdir(SECRETS_DIR, { recursive: true });
  // Written whole under a name of its own, then linked into place unless another tool started
  // at the same time got there first (its secrets are then the ones): a write cut short by a
  // kill leaves no empty file, and two tools never go on with different secrets.
  const written = await Deno.makeTempFile({ dir: SECRETS_DIR, prefix: ".secrets-" });
  try {
    await Deno.writeTextFile(written, JSON.stringify(secrets, null, 2), { mode: 0o600 });
    await Deno.link(written, SECRETS_FILE);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    return await devSecrets();
  } finally {
    await Deno.remove(written);
  }
  return secrets;
}
