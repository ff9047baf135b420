'use strict';
/** Order statistics for the benchmark's figures. */

/** The q-quantile (0..1) of an ascending-sorted array, by linear interpolation. */
function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  return v.length ? percentile(v, 0.5) : NaN;
}

module.exports = { percentile, median };
