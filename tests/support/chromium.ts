/** Flags of a headless Chromium in CI and in containers. */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
];

function findChromium(): string | null {
  const candidates = [
    Deno.env.get("CHROMIUM_PATH"),
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
  ];
  for (const path of candidates) {
    if (!path) continue;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not there
    }
  }
  return null;
}

/**
 * The Chromium the browser tests of `testFile` launch (CHROMIUM_PATH, else Debian's); null,
 * saying that those tests are skipped, when there is none.
 */
export function chromiumFor(testFile: string): string | null {
  const path = findChromium();
  if (path === null) {
    console.warn(
      `%c${testFile} is SKIPPED: no Chromium at /usr/bin/chromium (or CHROMIUM_PATH); ` +
        "`apt-get install -y chromium` to run it",
      "color: yellow",
    );
  }
  return path;
}
