// Preloaded by .ci/run into every test file: says when the file's tests are done (its worker's
// unload), so that after a crash of the test runner only the files that had not finished run
// again (see .ci/run).
globalThis.addEventListener("unload", () => {
  console.error(`##FILE-DONE ${Deno.mainModule}`);
});
