// The shape of one `mist` sub-command. Each command lives in src/commands/<name>.ts and is
// listed in src/commands/index.ts.
import type { ParseArgsConfig } from 'node:util';
import { CROSS_ENTROPY_MODES, FLASH_ATTENTION_KERNELS, GRAD_ACCUM_DTYPES, type TrainingSpec } from '@mist/core';
import { SEARCH_KNOBS, type SearchKnobs } from '@mist/tuner';

type SearchKnobKey = keyof SearchKnobs;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** True when stderr is a terminal (progress bars redraw in place). */
  isTTY: boolean;
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & { description: string; valueName?: string };

export type ParsedValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** e.g. `mist validate PLAN.json [--model M] [--json]` */
  usage: string;
  /** Working examples shown by --help. */
  examples: string[];
  options: Record<string, OptionSpec>;
  /** Positional arguments allowed (default: none). */
  positionals?: { min: number; max: number; names: string };
  run(values: ParsedValues, positionals: string[], io: CliIo): Promise<number>;
}

/** Thrown for a bad command line; printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function stringOpt(values: ParsedValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireString(values: ParsedValues, name: string): string {
  const v = stringOpt(values, name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

/** Reads a positive integer option; names the flag and the bad value on error. */
export function intOpt(values: ParsedValues, name: string, fallback?: number): number | undefined {
  const v = stringOpt(values, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name}: got "${v}"; expected a positive integer`);
  return n;
}

export function numberOpt(values: ParsedValues, name: string, fallback?: number): number | undefined {
  const v = stringOpt(values, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name}: got "${v}"; expected a number`);
  return n;
}

export function boolOpt(values: ParsedValues, name: string): boolean {
  return values[name] === true;
}

/** The --json flag every listing command has. */
export const JSON_OPTION: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'print machine-readable JSON on stdout' },
};

/**
 * A search knob's flag (@mist/tuner SEARCH_KNOBS) as a command option: `mist tune` takes every knob so,
 * and `mist analyze`, `mist export` and `mist fit` the training facts among them, with the same text.
 */
export function knobOption(key: SearchKnobKey): Record<string, OptionSpec> {
  const k = SEARCH_KNOBS.find((x) => x.key === key);
  if (!k) throw new Error(`no search knob ${key}`);
  return {
    [k.flag]: {
      type: k.kind.type === 'flag' || k.kind.type === 'off-flag' ? 'boolean' : 'string',
      ...(k.valueName ? { valueName: k.valueName } : {}),
      description: k.description,
    },
  };
}

/** How the loss reads the logits (TrainingSpec.crossEntropy): the knob's option. */
export const CROSS_ENTROPY_OPTION = knobOption('crossEntropy');

/** torch.compile of an engine that has it (torchtitan): the knob's option. */
export const COMPILE_OPTION = knobOption('compile');

/** Reads --compile with --cross-entropy: the loss mode it implies (compiled), or the --cross-entropy value; a conflict is a usage error. */
export function compiledCrossEntropy(values: ParsedValues, crossEntropy: TrainingSpec['crossEntropy'] | undefined): TrainingSpec['crossEntropy'] | undefined {
  if (values.compile !== true) return crossEntropy;
  if (crossEntropy !== undefined && crossEntropy !== 'compiled') {
    throw new UsageError(`--compile compiles the loss: it runs with --cross-entropy compiled only (got --cross-entropy ${crossEntropy})`);
  }
  return 'compiled';
}

/** The fp8 weights kept and gathered as fp8 (TrainingSpec.fp8ParamGather), as `mist analyze` and `mist export` take it. */
export const FP8_PARAM_GATHER_OPTION: Record<string, OptionSpec> = {
  'fp8-param-gather': {
    type: 'boolean',
    description: 'with fp8 linear layers: their weights kept and all-gathered as fp8, 1 byte an element (Megatron-LM --fp8-param-gather with the ' +
      'distributed optimizer, NeMo fp8_param_gather, torchtitan enable_fsdp_float8_all_gather under FSDP)',
  },
};

/** Reads --fp8-param-gather: `{ fp8ParamGather: true }` when given, else nothing. */
export function fp8ParamGatherOpt(values: ParsedValues): { fp8ParamGather?: true } {
  return values['fp8-param-gather'] === true ? { fp8ParamGather: true } : {};
}

/** The flash-attention kernel (TrainingSpec.flashAttentionKernel), as `mist analyze` takes it. */
export const ATTENTION_KERNEL_OPTION: Record<string, OptionSpec> = {
  'attention-kernel': {
    type: 'string', valueName: 'flash2|flash1|triton|cudnn',
    description: 'the flash-attention kernel the stack runs: flash2 (default; FlashAttention-2, PyTorch SDPA\'s flash backend), ' +
      'flash1 (FlashAttention v1), triton (the Triton FlashAttention, llm-foundry\'s attn_impl triton) or cudnn (cuDNN\'s fused attention, which ' +
      'Transformer Engine runs on Hopper; measured on H100), at its measured share of flash2\'s rate',
  },
};

/** Reads --attention-kernel; names the allowed values on error. */
export function attentionKernelOpt(values: ParsedValues): TrainingSpec['flashAttentionKernel'] | undefined {
  return enumOpt(values, 'attention-kernel', FLASH_ATTENTION_KERNELS);
}

/** The dtype gradients accumulate in (TrainingSpec.gradAccumDtype): the knob's option. */
export const GRAD_ACCUM_OPTION = knobOption('gradAccumDtype');

/** The gradient reduction after the backward instead of beside it (TrainingSpec.gradReduceOverlap false). */
export const NO_GRAD_REDUCE_OVERLAP_OPTION: Record<string, OptionSpec> = {
  'no-overlap-grad-reduce': {
    type: 'boolean',
    description: 'the ZeRO-0/1 gradient reduction after the last backward, exposed (Megatron-LM without --overlap-grad-reduce, ' +
      'its default; legacy --DDP-impl local) instead of beside it (PyTorch DDP, Megatron-Core --overlap-grad-reduce)',
  },
};

/** --no-overlap-grad-reduce as the training spec's field: false when given, absent otherwise (the default, true). */
export function gradReduceOverlapOpt(values: ParsedValues): { gradReduceOverlap?: false } {
  return values['no-overlap-grad-reduce'] === true ? { gradReduceOverlap: false } : {};
}

/** A string option that must be one of `allowed` (named, in that order, on error); `fallback` when absent. */
export function enumOpt<T extends string>(values: ParsedValues, name: string, allowed: readonly T[]): T | undefined;
export function enumOpt<T extends string>(values: ParsedValues, name: string, allowed: readonly T[], fallback: T): T;
export function enumOpt<T extends string>(values: ParsedValues, name: string, allowed: readonly T[], fallback?: T): T | undefined {
  const v = stringOpt(values, name);
  if (v === undefined) return fallback;
  const hit = allowed.find((a) => a === v);
  if (hit === undefined) throw new UsageError(`--${name}: got "${v}"; allowed: ${allowed.join(', ')}`);
  return hit;
}

/** Reads --grad-accum-dtype; names the allowed values on error. */
export function gradAccumOpt(values: ParsedValues): TrainingSpec['gradAccumDtype'] | undefined {
  return enumOpt(values, 'grad-accum-dtype', GRAD_ACCUM_DTYPES);
}

/** Reads --cross-entropy; names the allowed values on error. */
export function crossEntropyOpt(values: ParsedValues): TrainingSpec['crossEntropy'] | undefined {
  return enumOpt(values, 'cross-entropy', CROSS_ENTROPY_MODES);
}
