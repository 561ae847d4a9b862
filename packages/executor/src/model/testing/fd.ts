// Test helper: directional central finite differences of a float32 model. For a direction d (the
// gradient of one tensor, normalised), it steps the parameters to p +- eps d, rounds to float32,
// and compares L(p+) - L(p-) with g . (p+ - p-) using the steps actually applied. Richardson
// extrapolation over eps and eps/2 cancels the eps^2 term of the central difference.
export interface DirectionalCheck {
  name: string;
  analytic: number;
  numeric: number;
  relError: number;
}

export async function directionalCheck(
  name: string, params: Float32Array, grad: Float32Array, offset: number, size: number, loss: () => Promise<number>, epsOverride?: number,
): Promise<DirectionalCheck> {
  let norm = 0;
  for (let i = 0; i < size; i++) norm += grad[offset + i] ** 2;
  norm = Math.sqrt(norm);
  if (norm === 0) return { name, analytic: 0, numeric: 0, relError: 0 };
  // Step so that the loss moves by about 0.3: big enough to rise above float32 noise, small enough
  // for the curvature (what is left of it after Richardson) to stay negligible.
  const eps = epsOverride ?? Math.min(0.3, Math.max(0.003, 0.3 / norm));
  const keep = params.slice(offset, offset + size);
  const central = async (e: number): Promise<{ num: number; ana: number }> => {
    const plus = new Float32Array(size), minus = new Float32Array(size);
    let ana = 0;
    for (let i = 0; i < size; i++) {
      const d = grad[offset + i] / norm;
      plus[i] = keep[i] + e * d;
      minus[i] = keep[i] - e * d;
      ana += grad[offset + i] * (plus[i] - minus[i]);
    }
    params.set(plus, offset);
    const up = await loss();
    params.set(minus, offset);
    const down = await loss();
    params.set(keep, offset);
    return { num: up - down, ana };
  };
  const big = await central(eps), small = await central(eps / 2);
  // numeric / analytic change for each step (1 when exact), then Richardson: (4 r(eps/2) - r(eps)) / 3.
  const rBig = big.num / big.ana, rSmall = small.num / small.ana;
  const numeric = ((4 * rSmall - rBig) / 3) * norm;
  return { name, analytic: norm, numeric, relError: Math.abs(numeric - norm) / norm };
}
