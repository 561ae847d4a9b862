// Plain JavaScript float64 references of the native kernels, written for clarity, not speed. The
// kernel tests compare the native forward passes against them and take central finite differences
// of them to check the native backward passes.
export type F64 = Float64Array;

export function matmulRef(a: F64, b: F64, m: number, n: number, k: number, transA = false, transB = false): F64 {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = s;
    }
  }
  return c;
}

export function biasAddRef(x: F64, bias: F64, rows: number, cols: number): F64 {
  return x.map((v, i) => v + bias[i % cols]);
}

export function layerNormRef(x: F64, gamma: F64, beta: F64 | null, rows: number, cols: number, eps: number): F64 {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let c = 0; c < cols; c++) mu += x[r * cols + c];
    mu /= cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = (x[r * cols + c] - mu) * rs * gamma[c] + (beta ? beta[c] : 0);
  }
  return y;
}

export function rmsNormRef(x: F64, gamma: F64, rows: number, cols: number, eps: number): F64 {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c] ** 2;
    const rs = 1 / Math.sqrt(s / cols + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c] * rs * gamma[c];
  }
  return y;
}

export function geluRef(x: F64): F64 {
  return x.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
}

export function squaredReluRef(x: F64): F64 {
  return x.map((v) => (v > 0 ? v * v : 0));
}

export function swigluRef(gate: F64, up: F64): F64 {
  return gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
}

export function ropeRef(x: F64, rows: number, seq: number, heads: number, d: number, theta = 10000, posOffset = 0): F64 {
  const y = new Float64Array(x.length);
  const half = d / 2;
  for (let r = 0; r < rows; r++) {
    const pos = posOffset + (r % seq);
    for (let h = 0; h < heads; h++) {
      const o = r * heads * d + h * d;
      for (let i = 0; i < half; i++) {
        const ang = pos * theta ** ((-2 * i) / d);
        const c = Math.cos(ang), s = Math.sin(ang);
        y[o + i] = x[o + i] * c - x[o + i + half] * s;
        y[o + i + half] = x[o + i + half] * c + x[o + i] * s;
      }
    }
  }
  return y;
}

export interface AttnDims {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Causal GQA attention with an explicit softmax over every row (the textbook form). */
export function attentionRef(q: F64, k: F64, v: F64, s: AttnDims): F64 {
  const { batch, seq, heads, kvHeads, headDim: d } = s;
  const qw = heads * d, kw = kvHeads * d, group = heads / kvHeads, scale = 1 / Math.sqrt(d);
  const out = new Float64Array(batch * seq * qw);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < seq; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[(b * seq + i) * qw + h * d + c] * k[(b * seq + j) * kw + kvh * d + c];
          scores.push(dot * scale);
        }
        const mx = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - mx));
        const sum = e.reduce((x, y) => x + y, 0);
        for (let j = 0; j <= i; j++) {
          for (let c = 0; c < d; c++) out[(b * seq + i) * qw + h * d + c] += (e[j] / sum) * v[(b * seq + j) * kw + kvh * d + c];
        }
      }
    }
  }
  return out;
}

export function embeddingRef(tokens: Int32Array, wte: F64, wpe: F64 | null, hidden: number, seq: number): F64 {
  const out = new Float64Array(tokens.length * hidden);
  for (let r = 0; r < tokens.length; r++) {
    for (let c = 0; c < hidden; c++) {
      out[r * hidden + c] = wte[tokens[r] * hidden + c] + (wpe ? wpe[(r % seq) * hidden + c] : 0);
    }
  }
  return out;
}

/** Per-row softmax cross-entropy; target -1 gives 0. */
export function crossEntropyRef(logits: F64, targets: Int32Array, rows: number, vocab: number): F64 {
  const loss = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    if (targets[r] < 0) continue;
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    const mx = Math.max(...row);
    let s = 0;
    for (const x of row) s += Math.exp(x - mx);
    loss[r] = mx + Math.log(s) - row[targets[r]];
  }
  return loss;
}

export interface AdamWRefState {
  p: F64;
  m: F64;
  v: F64;
}

export function adamwRef(
  st: AdamWRefState, g: F64, step: number, lr: number, b1: number, b2: number, eps: number, wd: number, gradScale: number,
): void {
  for (let i = 0; i < st.p.length; i++) {
    const gi = g[i] * gradScale;
    st.m[i] = b1 * st.m[i] + (1 - b1) * gi;
    st.v[i] = b2 * st.v[i] + (1 - b2) * gi * gi;
    const mh = st.m[i] / (1 - b1 ** step), vh = st.v[i] / (1 - b2 ** step);
    st.p[i] -= lr * (wd * st.p[i] + mh / (Math.sqrt(vh) + eps));
  }
}
