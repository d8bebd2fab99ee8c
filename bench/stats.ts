/** Percentile summaries for the benchmark report. */

/** Percentiles of a sample set; null where there were no samples (not a time of 0). */
export interface Summary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

/** Nearest-rank percentiles of `samples` (milliseconds), rounded to 0.01. */
export function summarize(samples: number[]): Summary {
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number) =>
    sorted.length === 0
      ? null
      : Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]! * 100) /
        100;
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}

/** A percentile as the report prints it: "none" when nothing was measured. */
export function shownMs(value: number | null): string {
  return value === null ? "none" : String(value);
}
