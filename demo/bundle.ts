/**
 * The page's script with the client library, bundled for browsers by `deno bundle` (run as a
 * subprocess of the same Deno, in the project's directory so that deno.json's imports and
 * deno.lock apply). Throws with `deno bundle`'s own output when it fails.
 */
export async function bundleDemo(signal?: AbortSignal): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform=browser", "--minify", "--quiet", "demo/app.js"],
    cwd: new URL("../", import.meta.url),
    stdout: "piped",
    stderr: "piped",
    ...(signal ? { signal } : {}),
  }).output();
  const decoder = new TextDecoder();
  if (code !== 0) throw new Error(`deno bundle failed (${code}): ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}
