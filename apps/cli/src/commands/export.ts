// `mist export --plan plan.json --to megatron|nemo|deepspeed|torchtitan [--out DIR] [--nearest]`: the files
// that launch a plan with another engine. A plan the engine cannot express is refused naming each
// feature (exit 2), or with --nearest mapped to the closest expressible plan, which is analyzed beside
// the original (predicted iteration time and peak memory of both).
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  builtinHardwareProfile, ENGINE_NAMES, engineGradAccumDtype, engineOverlapsGradReduce, engineRunsCommOverlaps, formatBytes, formatSeconds,
  isEngineName, loadCluster, loadModel, parsePlan, readSpecFile,
} from '@mist/core';
import { analyzePlan } from '@mist/analyzer';
import { exportPlan, InexpressiblePlanError, nearestExpressiblePlan } from '@mist/engines';
import {
  type Command, COMPILE_OPTION, compiledCrossEntropy, CROSS_ENTROPY_OPTION, crossEntropyOpt, enumOpt, FP8_PARAM_GATHER_OPTION, fp8ParamGatherOpt, GRAD_ACCUM_OPTION, gradAccumOpt, gradReduceOverlapOpt, intOpt, JSON_OPTION,
  NO_GRAD_REDUCE_OVERLAP_OPTION, requireString, stringOpt, UsageError,
} from '../cli/command';
import { renderTable } from '../cli/table';

export const exportCommand: Command = {
  name: 'export',
  summary: 'write the launch files of a plan for Megatron-LM, NeMo, DeepSpeed or torchtitan',
  usage: 'mist export --plan PLAN.json --to megatron|nemo|deepspeed|torchtitan [--out DIR] [--nearest] [--model M] [--cluster C] [--dtype bf16|fp16] [--fp8 e4m3|hybrid] ' +
    '[--tp-comm-overlap] [--overlap-param-gather] [--no-overlap-grad-reduce] [--cross-entropy MODE] [--grad-accum-dtype param|fp32] [--fp8-param-gather] [--compile] [--master-addr HOST] [--master-port N] [--json]',
  examples: [
    'mist export --plan examples/plans/gpt3-1.3b-1x2-l4.json --to megatron --out /tmp/megatron',
    'mist export --plan examples/plans/gpt3-1.3b-1x2-l4.json --to deepspeed --out /tmp/ds',
    'mist export --plan my-plan.json --to megatron --nearest --out /tmp/megatron',
  ],
  options: {
    plan: { type: 'string', valueName: 'FILE', description: 'the plan to export (JSON or YAML)' },
    to: { type: 'string', valueName: 'ENGINE', description: `engine: ${ENGINE_NAMES.join(', ')}` },
    out: { type: 'string', valueName: 'DIR', description: 'output directory (default: ./mist-export-ENGINE)' },
    nearest: { type: 'boolean', description: 'map a plan the engine cannot express to the closest one it can, and compare both' },
    model: { type: 'string', valueName: 'NAME|FILE', description: 'model (default: the plan\'s "model")' },
    cluster: { type: 'string', valueName: 'SHORTHAND|FILE', description: 'cluster (default: the plan\'s "cluster")' },
    dtype: { type: 'string', valueName: 'bf16|fp16', description: 'mixed-precision type (default bf16)' },
    fp8: { type: 'string', valueName: 'e4m3|hybrid', description: 'FP8 format of the GEMMs (Megatron-LM/NeMo --fp8-format, torchtitan float8). A plan tuned with fp8 (its "fp8" field, `mist tune --fp8`) is predicted and exported with it; this flag adds fp8 to a plan that was predicted without it' },
    'tp-comm-overlap': {
      type: 'boolean',
      description: 'Megatron-LM only: write --tp-comm-overlap (and --overlap-grad-reduce) where the plan has sequence parallelism with tp > 1, as `mist analyze --tp-comm-overlap` predicts it',
    },
    'overlap-param-gather': {
      type: 'boolean',
      description: 'Megatron-LM only: write --overlap-param-gather (and --overlap-grad-reduce) where the plan uses the distributed optimizer (ZeRO-1), as `mist analyze --overlap-param-gather` predicts it',
    },
    ...NO_GRAD_REDUCE_OVERLAP_OPTION,
    ...CROSS_ENTROPY_OPTION,
    ...GRAD_ACCUM_OPTION,
    ...FP8_PARAM_GATHER_OPTION,
    ...COMPILE_OPTION,
    'master-addr': { type: 'string', valueName: 'HOST', description: 'rendezvous host, node 0 (default 127.0.0.1; edit for several nodes)' },
    'master-port': { type: 'string', valueName: 'N', description: 'rendezvous port (default 29500)' },
    ...JSON_OPTION,
  },
  async run(values, _positionals, io) {
    const planFile = requireString(values, 'plan');
    const engine = requireString(values, 'to');
    if (!isEngineName(engine)) throw new UsageError(`--to: got "${engine}"; allowed: ${ENGINE_NAMES.join(', ')}`);
    const dtype = enumOpt(values, 'dtype', ['bf16', 'fp16'] as const, 'bf16');
    const fp8 = enumOpt(values, 'fp8', ['e4m3', 'hybrid'] as const);
    const overlaps = {
      tpCommOverlap: values['tp-comm-overlap'] === true, paramGatherOverlap: values['overlap-param-gather'] === true, ...gradReduceOverlapOpt(values),
    };
    for (const [flag, on] of [['tp-comm-overlap', overlaps.tpCommOverlap], ['overlap-param-gather', overlaps.paramGatherOverlap]] as const) {
      if (on && !engineRunsCommOverlaps(engine)) throw new UsageError(`--${flag}: Megatron-LM's flag; --to ${engine} has no such option in its export`);
    }
    const crossEntropy = compiledCrossEntropy(values, crossEntropyOpt(values));
    const gradAccumDtype = gradAccumOpt(values);
    const { fp8ParamGather } = fp8ParamGatherOpt(values);
    const training = { ...overlaps, ...(crossEntropy ? { crossEntropy } : {}), ...(gradAccumDtype ? { gradAccumDtype } : {}), ...(fp8ParamGather ? { fp8ParamGather } : {}) };
    const data = readSpecFile(planFile);
    const doc = (data && typeof data === 'object' ? data : {}) as { model?: unknown; cluster?: unknown };
    const modelRef = stringOpt(values, 'model') ?? (typeof doc.model === 'string' ? doc.model : undefined);
    if (!modelRef) throw new UsageError('--model is required when the plan names no model');
    const clusterRef = stringOpt(values, 'cluster') ?? (typeof doc.cluster === 'string' ? doc.cluster : undefined);
    if (!clusterRef) throw new UsageError('--cluster is required when the plan names no cluster');
    const model = loadModel(modelRef);
    const cluster = loadCluster(clusterRef);
    const original = parsePlan(data, { model, cluster });
    const launch = { masterAddr: stringOpt(values, 'master-addr') ?? '127.0.0.1', masterPort: intOpt(values, 'master-port', 29500) ?? 29500 };
    const out = stringOpt(values, 'out') ?? `mist-export-${engine}`;
    let plan = original;
    let comparison: Record<string, unknown> | undefined;
    let text = '';
    try {
      if (values.nearest) {
        const near = nearestExpressiblePlan(engine, original, model, cluster);
        plan = near.plan;
        if (near.changes.length > 0) {
          const profile = builtinHardwareProfile(cluster);
          const a = analyzePlan({ model, plan: original, profile, training }).analysis;
          const b = analyzePlan({ model, plan, profile, training }).analysis;
          const peak = (x: typeof a): number => Math.max(...x.stages.map((s) => s.peakMemoryBytes));
          comparison = {
            changes: near.changes,
            original: { iterationTimeS: a.iterationTimeS, peakMemoryBytes: peak(a), fits: a.allFit },
            nearest: { iterationTimeS: b.iterationTimeS, peakMemoryBytes: peak(b), fits: b.allFit },
          };
          text += `The plan is not expressible in ${engine}; the nearest plan changes: ${near.changes.join('; ')}.\n`;
          text += renderTable([['original', a], [`nearest (${engine})`, b]] as const, [
            { header: 'plan', value: ([n]) => n },
            { header: 'iteration', value: ([, x]) => formatSeconds(x.iterationTimeS), align: 'right' },
            { header: 'tokens/s', value: ([, x]) => Math.round(x.tokensPerS), align: 'right' },
            { header: 'peak memory', value: ([, x]) => formatBytes(peak(x)), align: 'right' },
            { header: 'fits', value: ([, x]) => (x.allFit ? 'yes' : 'no') },
          ]);
          text += `(iteration time nearest / original: ${(b.iterationTimeS / a.iterationTimeS).toFixed(3)})\n`;
        }
      }
      const files = exportPlan(engine, { plan, model, cluster, dtype, fp8, overlaps, crossEntropy, gradAccumDtype, fp8ParamGather, launch });
      // The engine's own gradient dtype where none was asked for (Megatron-LM's and NeMo's fp32 main
      // gradients with bf16): a plan tuned without them may not fit with them. Said, not changed.
      const engineGrads = gradAccumDtype === undefined ? engineGradAccumDtype(engine, dtype) : null;
      if (engineGrads === 'fp32') {
        const withFp32 = analyzePlan({ model, plan, profile: builtinHardwareProfile(cluster, dtype),
          training: { ...training, paramDtype: dtype, computeDtype: dtype, gradAccumDtype: 'fp32' } }).analysis;
        const over = withFp32.stages.findIndex((x) => x.overflowBytes > 0);
        if (over >= 0) {
          const st = withFp32.stages[over];
          io.stderr(`mist export: warning: with ${engine}'s default fp32 main gradients (2 more bytes per parameter with --dtype bf16) ` +
            `stage ${over} needs ${formatBytes(st.peakMemoryBytes)} of ${formatBytes(st.capacityBytes)}: pass --grad-accum-dtype param ` +
            `(${engine === 'megatron' ? '--grad-reduce-in-bf16' : 'grad_reduce_in_fp32 = False'}), or tune with --target ${engine}\n`);
        }
      }
      // A ZeRO level whose reduction the engine runs after the backward (core engineOverlapsGradReduce:
      // DeepSpeed's ZeRO-0) makes a prediction that overlapped it optimistic. Said, with the figure, not changed.
      const reducedAfter = plan.stages.some((st) => !engineOverlapsGradReduce(engine, st.zero) && st.dp * (st.cp ?? 1) > 1);
      if (overlaps.gradReduceOverlap !== false && reducedAfter) {
        const profile = builtinHardwareProfile(cluster, dtype);
        const at = (gradReduceOverlap: boolean): number =>
          analyzePlan({ model, plan, profile, training: { ...training, paramDtype: dtype, computeDtype: dtype, gradReduceOverlap } }).analysis.iterationTimeS;
        io.stderr(`mist export: warning: ${engine} reduces ZeRO-${plan.stages[0].zero} gradients after the backward, not beside it: ` +
          `${formatSeconds(at(false))} per iteration as it runs against ${formatSeconds(at(true))} overlapped ` +
          '(`mist analyze PLAN --no-overlap-grad-reduce`; ZeRO-1 overlaps it with overlap_comm)\n');
      }
      fs.mkdirSync(out, { recursive: true });
      for (const f of files) {
        const p = path.join(out, f.path);
        fs.writeFileSync(p, f.content, { mode: f.executable ? 0o755 : 0o644 });
      }
      if (comparison) fs.writeFileSync(path.join(out, 'nearest-plan.json'), JSON.stringify(plan, null, 2) + '\n');
      if (values.json) {
        io.stdout(JSON.stringify({ engine, out, files: files.map((f) => f.path), ...(comparison ? { nearest: { plan, ...comparison } } : {}) }, null, 2) + '\n');
      } else {
        io.stdout(text + `Wrote ${files.length} file(s) for ${engine} to ${out}: ${files.map((f) => f.path).join(', ')}\n` +
          'Edit the lines marked EDIT_ME (data, tokenizer, paths) before launching.\n');
      }
      return 0;
    } catch (e) {
      if (e instanceof InexpressiblePlanError) {
        if (values.json) io.stdout(JSON.stringify({ engine, expressible: false, violations: e.violations }, null, 2) + '\n');
        io.stderr(`mist export: ${e.message}\n`);
        return 2;
      }
      throw e;
    }
  },
};
