/**
 * A 2-D projection of concept embeddings onto their first two principal components, by power
 * iteration on the covariance (never formed: each step is two passes over the n × d points), so
 * it costs O(n·d) per iteration whatever d is. Deterministic: fixed start vectors.
 */

export interface Projection {
  /** [x, y] per input point. */
  readonly points: readonly (readonly [number, number])[];
  /** Fraction of the total variance along each of the two axes. */
  readonly explained: readonly [number, number];
  /** Projects another vector of the same space (a trace state) onto the same axes. */
  project(vector: ArrayLike<number>): [number, number];
}

const ITERATIONS = 200;

/** Projects `vectors` (all of one length d) onto their two leading principal components. */
export function principalProjection(vectors: readonly ArrayLike<number>[]): Projection {
  const n = vectors.length;
  const d = vectors[0]?.length ?? 0;
  const mean = new Float64Array(d);
  for (const v of vectors) for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (v[j] as number) / n;
  const centred = vectors.map((v) => Float64Array.from({ length: d }, (_, j) => (v[j] as number) - (mean[j] as number)));

  const covarianceTimes = (u: Float64Array): Float64Array => {
    const out = new Float64Array(d);
    for (const row of centred) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += (row[j] as number) * (u[j] as number);
      for (let j = 0; j < d; j++) out[j] = (out[j] as number) + dot * (row[j] as number);
    }
    return out;
  };
  const axes: Float64Array[] = [];
  const variances: number[] = [];
  for (let axis = 0; axis < Math.min(2, d); axis++) {
    let u = Float64Array.from({ length: d }, (_, j) => Math.sin(1 + j * (axis + 1.618)));
    let lambda = 0;
    for (let it = 0; it < ITERATIONS; it++) {
      for (const previous of axes) orthogonalise(u, previous);
      const next = covarianceTimes(u);
      for (const previous of axes) orthogonalise(next, previous);
      lambda = norm(next);
      if (lambda === 0) break;
      u = next.map((x) => x / lambda);
    }
    axes.push(withSignFixed(normalised(u)));
    variances.push(lambda / Math.max(n, 1));
  }
  const total = centred.reduce((s, row) => s + row.reduce((t, x) => t + x * x, 0), 0) / Math.max(n, 1);
  const project = (vector: ArrayLike<number>): [number, number] => {
    const coordinate = (axis: Float64Array | undefined): number => {
      if (axis === undefined) return 0;
      let s = 0;
      for (let j = 0; j < d; j++) s += ((vector[j] as number) - (mean[j] as number)) * (axis[j] as number);
      return s;
    };
    return [coordinate(axes[0]), coordinate(axes[1])];
  };
  return {
    points: vectors.map(project),
    explained: [total > 0 ? (variances[0] ?? 0) / total : 0, total > 0 ? (variances[1] ?? 0) / total : 0],
    project,
  };
}

function norm(u: Float64Array): number {
  return Math.sqrt(u.reduce((s, x) => s + x * x, 0));
}

function normalised(u: Float64Array): Float64Array {
  const length = norm(u);
  return length === 0 ? u : u.map((x) => x / length);
}

function orthogonalise(u: Float64Array, axis: Float64Array): void {
  let dot = 0;
  for (let j = 0; j < u.length; j++) dot += (u[j] as number) * (axis[j] as number);
  for (let j = 0; j < u.length; j++) u[j] = (u[j] as number) - dot * (axis[j] as number);
}

/** The sign that makes the largest component positive, so that the picture is stable. */
function withSignFixed(u: Float64Array): Float64Array {
  let largest = 0;
  for (const x of u) if (Math.abs(x) > Math.abs(largest)) largest = x;
  return largest < 0 ? u.map((x) => -x) : u;
}
