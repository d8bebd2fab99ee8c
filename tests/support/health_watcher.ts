/**
 * A caller without the admin token, in a process of its own: it opens a connection to the gRPC
 * port given, holds a grpc.health.v1.Health/Watch open on it, prints `watching` once answered
 * and `closed` when the server closes the connection, then exits. A process of its own, since a
 * GOAWAY to a Deno HTTP/2 client with a stream open can crash its process (denoland/deno#36788).
 */
import { Buffer } from "node:buffer";
import http2 from "node:http2";

const session = http2.connect(`http://127.0.0.1:${Deno.args[0]}`);
session.on("error", () => {});
session.on("close", () => {
  console.log("closed");
  Deno.exit(0);
});
const stream = session.request({
  ":method": "POST",
  ":path": "/grpc.health.v1.Health/Watch",
  "content-type": "application/grpc",
  te: "trailers",
});
stream.on("error", () => {});
stream.on("data", () => {});
stream.once("response", () => console.log("watching"));
stream.end(Buffer.alloc(5));
