import type { PackageDefinition } from "@grpc/proto-loader";

/**
 * FileDescriptorProtos (the wire format of google/protobuf/descriptor.proto) as far as server
 * reflection needs them, read and written by hand: no descriptor library is a dependency.
 */

/** The fields of a FileDescriptorProto that a reflection client looks at first. */
export interface FileSummary {
  name: string;
  package: string;
  dependencies: string[];
  services: Array<{ name: string; methods: string[] }>;
}

const decoder = new TextDecoder();

/** Yields (field number, length-delimited bytes) of a message; skips other wire types. */
function* fields(bytes: Uint8Array): Generator<[number, Uint8Array]> {
  let offset = 0;
  const varint = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const byte = bytes[offset++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
      shift += 7;
    }
  };
  while (offset < bytes.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    switch (key & 7) {
      case 0:
        varint();
        break;
      case 1:
        offset += 8;
        break;
      case 2: {
        const length = varint();
        yield [field, bytes.subarray(offset, offset + length)];
        offset += length;
        break;
      }
      case 5:
        offset += 4;
        break;
      default:
        throw new Error(`unexpected wire type in field ${field}`);
    }
  }
}

/** Name, package, dependencies, and service and method names of a FileDescriptorProto. */
export function readFileDescriptor(bytes: Uint8Array): FileSummary {
  const summary: FileSummary = { name: "", package: "", dependencies: [], services: [] };
  for (const [field, value] of fields(bytes)) {
    if (field === 1) summary.name = decoder.decode(value);
    else if (field === 2) summary.package = decoder.decode(value);
    else if (field === 3) summary.dependencies.push(decoder.decode(value));
    else if (field === 6) {
      const service = { name: "", methods: [] as string[] };
      for (const [serviceField, serviceValue] of fields(value)) {
        if (serviceField === 1) service.name = decoder.decode(serviceValue);
        if (serviceField === 2) {
          for (const [methodField, methodValue] of fields(serviceValue)) {
            if (methodField === 1) service.methods.push(decoder.decode(methodValue));
          }
        }
      }
      summary.services.push(service);
    }
  }
  return summary;
}

const encoder = new TextEncoder();

function varintBytes(value: number): number[] {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return bytes;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let start = 0; start + needle.length <= haystack.length; start++) {
    for (let index = 0; index < needle.length; index++) {
      if (haystack[start + index] !== needle[index]) continue outer;
    }
    return true;
  }
  return false;
}

/**
 * proto-loader writes one FileDescriptorProto per package but leaves out `dependency`, so a
 * file that uses google.protobuf.Timestamp does not say that it imports the file defining it
 * (grpc/grpc-node#2595). Reflection clients such as grpcurl build descriptors from what a file
 * declares, and would fail on the unresolvable type. This appends the missing `dependency`
 * entries (field 3; a repeated field may come anywhere in a message): a file depends on every
 * other package whose qualified type names ("pkg.Type", as proto-loader writes them) it
 * mentions.
 */
export function declareDependencies(definition: PackageDefinition): void {
  const patched = new Map<Uint8Array, Uint8Array>();
  const all = new Set<Uint8Array>();
  for (const list of descriptorLists(definition)) {
    for (const bytes of list) all.add(bytes);
  }
  const files = [...all].map((bytes) => ({ bytes, ...readFileDescriptor(bytes) }));
  for (const file of files) {
    const imports = files.filter((other) =>
      other.package !== file.package && other.package !== "" &&
      !file.dependencies.includes(other.name) &&
      contains(file.bytes, encoder.encode(`${other.package}.`))
    );
    if (imports.length === 0) continue;
    const extra = imports.flatMap((other) => {
      const name = encoder.encode(other.name);
      return [0x1a, ...varintBytes(name.length), ...name];
    });
    const bytes = new Uint8Array(file.bytes.length + extra.length);
    bytes.set(file.bytes);
    bytes.set(extra, file.bytes.length);
    patched.set(file.bytes, bytes);
  }
  for (const list of descriptorLists(definition)) {
    for (let index = 0; index < list.length; index++) {
      list[index] = patched.get(list[index]!) ?? list[index]!;
    }
  }
}

/** The file lists of the message and enum definitions (services have none of their own). */
function descriptorLists(definition: PackageDefinition): Uint8Array[][] {
  return Object.values(definition).flatMap((entry) => {
    const list = "format" in entry ? entry.fileDescriptorProtos : undefined;
    return Array.isArray(list) ? [list] : [];
  });
}
