/**
 * `body` as it comes, failing with `stalled()` when no bytes come for `idleMs`. A request
 * body has no deadline of its own: a client that vanished without closing its connection (a
 * phone that changed networks) would hold its upload, and the upload's place among the user's
 * open uploads, for good.
 */
export function failWhenIdle(
  body: ReadableStream<Uint8Array>,
  idleMs: number,
  stalled: () => Error,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const silence = Promise.withResolvers<never>();
      timer = setTimeout(() => silence.reject(stalled()), idleMs);
      try {
        const { done, value } = await Promise.race([reader.read(), silence.promise]);
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
        reader.cancel(error).catch(() => {});
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason) {
      clearTimeout(timer);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
