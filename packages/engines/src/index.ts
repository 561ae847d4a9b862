// @mist/engines: export Mist plans to Megatron-LM, NeMo 2, DeepSpeed and torchtitan, and import their setups.
import { type EngineName } from '@mist/core';
import { exportDeepspeed } from './deepspeed/export';
import { exportMegatron } from './megatron/export';
import { exportNemo } from './nemo/export';
import { exportTorchtitan } from './torchtitan/export';
import { type ExportFile, type ExportInput, fp8ParamGatherViolations, gradAccumViolations, gradReduceViolations, InexpressiblePlanError, lossViolations } from './types';

export * from './types';
export { parseToml, writeToml, type TomlTable, type TomlValue } from './toml';
export { megatronArgs, flattenArgs, type MegatronArgs, type ArgLine } from './megatron/args';
export { exportMegatron } from './megatron/export';
export { importMegatron, type MegatronImportContext } from './megatron/import';
export { exportNemo } from './nemo/export';
export { exportDeepspeed, deepspeedConfig } from './deepspeed/export';
export { importDeepspeed, type DeepspeedImportContext } from './deepspeed/import';
export { exportTorchtitan, TORCHTITAN_FLAVORS } from './torchtitan/export';
export { importTorchtitan, type TorchtitanImportContext } from './torchtitan/import';
export { nearestExpressiblePlan, type NearestResult } from './nearest';

const EXPORTERS: Record<EngineName, (input: ExportInput) => ExportFile[]> = {
  megatron: exportMegatron,
  nemo: exportNemo,
  deepspeed: exportDeepspeed,
  torchtitan: exportTorchtitan,
};

/** The files that launch the plan with an engine; throws InexpressiblePlanError for what the engine lacks. */
export function exportPlan(engine: EngineName, input: ExportInput): ExportFile[] {
  const refused = [
    ...lossViolations(engine, input.crossEntropy, input.dtype), ...gradAccumViolations(engine, input.gradAccumDtype),
    ...gradReduceViolations(engine, input.overlaps), ...fp8ParamGatherViolations(engine, input),
  ];
  if (refused.length > 0) throw new InexpressiblePlanError(engine, refused);
  return EXPORTERS[engine](input);
}

export const IMPORT_ENGINES = ['megatron', 'deepspeed', 'torchtitan'] as const;
