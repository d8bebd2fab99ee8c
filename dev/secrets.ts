import { z } from "zod";

const SECRETS_DIR = ".dev";
const SECRETS_FILE = `${SECRETS_DIR}/secrets.json`;

const devSecretsSchema = z.object({
  JWT_SECRET: z.string().min(1),
  GRPC_ADMIN_TOKEN: z.string().min(1),
});

export type DevSecrets = z.infer<typeof devSecretsSchema>;

/**
 * `.dev/secrets.json` is there but holds no secrets (cut short, or edited): said in one line by
 * the tools (exit 2), since nothing would start on it until it is deleted.
 */
export class DevSecretsUnreadable extends Error {
  override name = "DevSecretsUnreadable";
}

/**
 * The secrets `deno task dev` keeps, or undefined when it has not made them yet. Rejects with
 * {@link DevSecretsUnreadable} for a file that does not hold them.
 */
export async function readDevSecrets(): Promise<DevSecrets | undefined> {
  let text;
  try {
    text = await Deno.readTextFile(SECRETS_FILE);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  let problem;
  try {
    const parsed = devSecretsSchema.safeParse(JSON.parse(text));
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0]!;
    problem = `${issue.path.join(".") || "the file"}: ${issue.message}`;
  } catch {
    // not the parser's message: it may quote the secrets
    problem = text.trim() === "" ? "empty" : "not JSON";
  }
  throw new DevSecretsUnreadable(
    `${SECRETS_FILE} is unreadable (${problem}): delete it, and \`deno task dev\` makes new ` +
      "secrets (tokens signed with the old ones stop working)",
  );
}

const random = (bytes: number) =>
  crypto.getRandomValues(new Uint8Array(bytes)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });

/**
 * Development-only secrets: generated on first use, kept in .dev/ (git-ignored). Rejects with
 * {@link DevSecretsUnreadable} for a file that does not hold them.
 */
export async function devSecrets(): Promise<DevSecrets> {
  const kept = await readDevSecrets();
  if (kept) return kept;
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

/** {@link devSecrets} for a tool: a file that does not hold them is said in one line, exit 2. */
export async function devSecretsOrExit(): Promise<DevSecrets> {
  try {
    return await devSecrets();
  } catch (error) {
    if (!(error instanceof DevSecretsUnreadable)) throw error;
    console.error(error.message);
    Deno.exit(2);
  }
}
