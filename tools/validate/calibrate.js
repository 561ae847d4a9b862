#!/usr/bin/env node
// Fits a GPU's sustained matmul share (packages/core/src/hardware-profile.ts, GpuCalibration.sustained)
// on its calibration sources: the sources of published-runs.json with "calibrates": GPU, their runs on
// that GPU taken together (one share per GPU, fitted on the union). The share scales
// the built-in profile's matmul efficiency (and with it the attention rate, which the profile states
// relative to it); the fit is the factor on the current profile that makes the median signed
// iteration-time error of those runs zero, found by bisection (the error falls as
// the factor grows). Prints, per calibration source, the error before, the factor, and the share to
// write into hardware-profile.ts; exits 1 when a profile is more than 0.5% off its fit, 0 when every
// one is at it, 2 for a bad option or data file. The sources fitted on are then not held out by
// `npm run validate`.
//
//   node tools/validate/calibrate.js [--json]      (npm run calibrate)
'use strict';
const { parseArgs } = require('node:util');
const { HELP_OPTION, parseOptions } = require('./options');
const { DataError, core, loadRuns, median, predict, signedPct } = require('./run-prediction');

const USAGE = `usage: node tools/validate/calibrate.js [--json]   (npm run calibrate)

Fits each calibrated GPU's sustained matmul share on its calibration sources' runs together
(published-runs.json sources with "calibrates") and prints it beside the built-in profile's (exit 0 when every profile is
within 0.5% of its fit, 1 when not, 2 for a bad option or data file).
  --json   one JSON document instead of the table
example: npm run calibrate`;

const values = parseOptions('calibrate', USAGE, () => parseArgs({ options: { json: { type: 'boolean' }, ...HELP_OPTION } }));
/** How far (relative) a profile's share may be from its fit and still count as at it. */
const TOLERANCE = 0.005;

/** The median signed time error of `rows` with the built-in matmul efficiency times `factor`. */
function medianError(rows, factor) {
  const profileOf = (p) => ({ ...p, compute: { ...p.compute, matmulEfficiency: Math.min(1, p.compute.matmulEfficiency * factor) } });
  return median(rows.map((r) => predict(r, { profileOf }).timeError));
}

/** The factor in [lo, hi] where medianError crosses zero (it falls as the factor grows). */
function fitFactor(rows, lo = 0.5, hi = 1.5) {
  if (medianError(rows, lo) < 0 || medianError(rows, hi) > 0) return null;
  while (hi - lo > 1e-4) {
    const mid = (lo + hi) / 2;
    if (medianError(rows, mid) > 0) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function fits() {
  const data = loadRuns();
  const byGpu = new Map();
  for (const [name, s] of Object.entries(data.sources)) {
    if (s.calibrates === undefined) continue;
    if (!data.runs.some((r) => r.source === name && r.gpu === s.calibrates && r.measured)) {
      throw new DataError(`source ${name} calibrates ${s.calibrates} but has no timed run on it`);
    }
    byGpu.set(s.calibrates, [...(byGpu.get(s.calibrates) ?? []), name]);
  }
  return [...byGpu].map(([gpu, names]) => {
    const rows = data.runs.filter((r) => names.includes(r.source) && r.gpu === gpu && r.measured);
    const name = names.join(' + ');
    const cal = core.builtinGpuCalibration(gpu);
    if (!cal) throw new DataError(`source ${name} calibrates ${gpu}, which the built-in profile does not calibrate (hardware-profile.ts GPU_CALIBRATION)`);
    const factor = fitFactor(rows);
    if (factor === null) throw new DataError(`source ${name}: no factor in [0.5, 1.5] brings its median error on ${gpu} to 0`);
    return {
      source: name, gpu, runs: rows.length, medianErrorNow: medianError(rows, 1), factor,
      sustainedNow: cal.sustained, sustainedFit: cal.sustained * factor, atFit: Math.abs(factor - 1) <= TOLERANCE,
    };
  });
}

let result;
try {
  result = fits();
} catch (err) {
  if (!(err instanceof DataError)) throw err;
  console.error(`calibrate: ${err.message}`);
  process.exit(2);
}
process.exitCode = result.every((f) => f.atFit) ? 0 : 1;
if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
else {
  for (const f of result) {
    process.stdout.write(`${f.gpu} on ${f.source} (${f.runs} runs): median time error now ${signedPct(f.medianErrorNow)}; ` +
      `fitted factor ${f.factor.toFixed(4)} -> sustained share ${f.sustainedFit.toFixed(3)} (the profile has ${f.sustainedNow.toFixed(3)}: ` +
      `${f.atFit ? 'at the fit' : 'update hardware-profile.ts'})\n`);
  }
  if (result.length === 0) process.stdout.write('no source of published-runs.json calibrates a GPU\n');
}
