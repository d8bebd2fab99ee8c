/** Prints a figure a scenario test measured, when FAULT_FIGURES=1 asks for them. */
export function report(line: string): void {
  if (Deno.env.get("FAULT_FIGURES") === "1") console.log(`[figures] ${line}`);
}
