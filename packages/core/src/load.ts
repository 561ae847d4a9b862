// Loading specs from the command line: a catalog name, our JSON/YAML file, or a Hugging Face config.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { parseClusterShorthand, parseClusterSpec, type ClusterSpec } from './cluster';
import { type HardwareProfile, parseHardwareProfile } from './hardware-profile';
import { type ModelSpec, modelFromHuggingFace, parseModelSpec } from './model';
import { getModel } from './model-catalog';
import { parsePlan, type Plan } from './plan';
import { SpecError } from './validation';

/** Reads a JSON or YAML file (by extension; JSON is tried first otherwise). */
export function readSpecFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new SpecError('file', [{ field: 'path', value: file, message: `cannot be read (${(err as Error).message})` }]);
  }
  const ext = path.extname(file).toLowerCase();
  try {
    if (ext === '.yaml' || ext === '.yml') return YAML.parse(text);
    return JSON.parse(text);
  } catch (err) {
    if (ext === '.json') {
      throw new SpecError('file', [{ field: 'path', value: file, message: `is not valid JSON (${(err as Error).message})` }]);
    }
    return YAML.parse(text);
  }
}

function looksLikeFile(ref: string): boolean {
  return /[./\\]/.test(ref) && fs.existsSync(ref);
}

/** A model by catalog name, our model file (JSON/YAML) or a Hugging Face config.json. */
export function loadModel(ref: string): ModelSpec {
  if (!looksLikeFile(ref)) return getModel(ref);
  const data = readSpecFile(ref);
  if (data && typeof data === 'object' && ('model_type' in data || 'num_hidden_layers' in data || 'n_layer' in data)) {
    return modelFromHuggingFace(data as Record<string, unknown>, path.basename(path.dirname(path.resolve(ref))));
  }
  return parseModelSpec(data);
}

/** A cluster by shorthand (`2x8-a100-40gb`) or a ClusterSpec file. */
export function loadCluster(ref: string): ClusterSpec {
  if (looksLikeFile(ref)) return parseClusterSpec(readSpecFile(ref));
  return parseClusterShorthand(ref);
}

export function loadPlan(file: string, ctx: { model?: ModelSpec; cluster?: ClusterSpec } = {}): Plan {
  return parsePlan(readSpecFile(file), ctx);
}

export function loadHardwareProfile(file: string): HardwareProfile {
  return parseHardwareProfile(readSpecFile(file));
}
