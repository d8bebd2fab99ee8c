/** What a message's media is, as the sender says: the contract's `media_type` less `text`. */
export type MediaKind = "image" | "audio" | "video";

/** The largest decoded size accepted for each kind, in bytes. */
export type MediaLimits = Readonly<Record<MediaKind, number>>;

/** The largest of the limits: what a file of a not yet known kind may grow to. */
export function largestLimit(limits: MediaLimits): number {
  return Math.max(limits.image, limits.audio, limits.video);
}
