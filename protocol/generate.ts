/**
 * `deno task protocol`: writes the JSON Schema and AsyncAPI documents (documents.ts) to
 * docs/protocol/. `deno task protocol --check` writes nothing and fails, naming the files,
 * when what is checked in differs from what the schemas give (CI runs it).
 */
import { protocolDocuments } from "./documents.ts";

const OUT = new URL("../docs/protocol/", import.meta.url);

async function readOrNull(url: URL): Promise<string | null> {
  try {
    return await Deno.readTextFile(url);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** The generated files whose checked-in copy is missing or different. */
export async function staleDocuments(): Promise<string[]> {
  const stale: string[] = [];
  for (const [name, text] of Object.entries(protocolDocuments())) {
    if (await readOrNull(new URL(name, OUT)) !== text) stale.push(name);
  }
  return stale;
}

const USAGE = "usage: deno task protocol [--check]\n" +
  "writes docs/protocol/ from the schemas; --check writes nothing and fails when it differs";

if (import.meta.main) {
  // anything but --check is refused: a mistyped --check would rewrite what it was to check
  const [first, ...rest] = Deno.args;
  if (first === "--help" || first === "-h") {
    console.log(USAGE);
    Deno.exit(0);
  }
  const unknown = first !== undefined && first !== "--check" ? first : rest[0];
  if (unknown !== undefined) {
    console.error(`${unknown}: this task takes --check or nothing\n${USAGE}`);
    Deno.exit(2);
  }
  if (first === "--check") {
    const stale = await staleDocuments();
    if (stale.length > 0) {
      console.error(`docs/protocol/ is out of date (${stale.join(", ")}): run deno task protocol`);
      Deno.exit(1);
    }
    console.log("docs/protocol/ matches the schemas");
  } else {
    await Deno.mkdir(OUT, { recursive: true });
    for (const [name, text] of Object.entries(protocolDocuments())) {
      await Deno.writeTextFile(new URL(name, OUT), text);
      console.log(`wrote docs/protocol/${name}`);
    }
  }
}
