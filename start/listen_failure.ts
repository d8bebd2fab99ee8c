/** A port the start could not listen on, naming the setting to change and the address. */
export class ListenFailure extends Error {
  constructor(
    readonly setting: "PORT" | "GRPC_PORT" | "HOST",
    address: string,
    reason: string,
    cause: unknown,
  ) {
    super(`${setting}: cannot listen on ${address}: ${reason}`, { cause });
    this.name = "ListenFailure";
  }
}

/**
 * What the start could not listen on, as a ListenFailure: Deno's own error names neither the
 * setting nor the address, grpc-js's only the address. Other errors are returned as they are.
 */
export function listenFailure(
  setting: "PORT" | "GRPC_PORT",
  host: string,
  port: number,
  error: unknown,
) {
  const text = error instanceof Error ? error.message : "";
  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const failure = (setting: "PORT" | "GRPC_PORT" | "HOST", reason: string) =>
    new ListenFailure(setting, address, reason, error);
  if (error instanceof Deno.errors.AddrInUse || /\bEADDRINUSE\b/.test(text)) {
    return failure(setting, "the address is in use");
  }
  if (error instanceof Deno.errors.AddrNotAvailable || /\bEADDRNOTAVAIL\b/.test(text)) {
    return failure("HOST", "no interface of this host has the address");
  }
  // a host name the resolver does not know (a typo), or could not ask about: Deno says why,
  // grpc-js only that it failed
  const lookup = /^failed to lookup address information: (.+)$/.exec(text);
  if (lookup || /^Name resolution failed\b/.test(text)) {
    return failure("HOST", `the name could not be resolved${lookup ? ` (${lookup[1]})` : ""}`);
  }
  if (error instanceof Deno.errors.PermissionDenied || /\bEACCES\b/.test(text)) {
    return failure(setting, "not permitted (a port below 1024 needs privileges)");
  }
  return error;
}
