/**
 * A set of seqs kept as sorted, disjoint ranges: the reads of a chat come mostly in order, so
 * thousands of them take a few numbers.
 */
export class SeqRanges {
  /** Flat pairs: first, last, first, last, ... ascending, with gaps between pairs. */
  #bounds: number[] = [];

  has(seq: number): boolean {
    const at = this.#firstEndingAtOrAfter(seq);
    return at < this.#bounds.length && this.#bounds[at]! <= seq;
  }

  add(seq: number): void {
    const bounds = this.#bounds;
    const at = this.#firstEndingAtOrAfter(seq - 1);
    // `at` is the range ending at seq - 1 or later: the one to grow, or the place to insert
    if (at < bounds.length && bounds[at]! <= seq + 1) {
      if (bounds[at]! <= seq && seq <= bounds[at + 1]!) return;
      if (seq === bounds[at + 1]! + 1) {
        bounds[at + 1] = seq;
        // the next range may now touch this one
        if (at + 2 < bounds.length && bounds[at + 2] === seq + 1) {
          bounds.splice(at + 1, 2);
        }
      } else {
        bounds[at] = seq; // seq === first - 1
      }
      return;
    }
    bounds.splice(at, 0, seq, seq);
  }

  /** Index of the first pair whose last is >= seq (bounds.length when none). */
  #firstEndingAtOrAfter(seq: number): number {
    const bounds = this.#bounds;
    let low = 0;
    let high = bounds.length / 2;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (bounds[2 * middle + 1]! < seq) low = middle + 1;
      else high = middle;
    }
    return 2 * low;
  }

  /** How many ranges it holds (for tests). */
  get ranges(): number {
    return this.#bounds.length / 2;
  }
}
