// Loading specs from the command line: a catalog name, our JSON/YAML file, or a Hugging Face config.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { clusterFromDocument, parseClusterShorthand, type ClusterSpec } from './cluster';
import { type HardwareProfile, parseHardwareProfile } from './hardware-profile';
import { type ModelSpec, modelFromHuggingFace, parseModelSpec } from './model';
import { getModel } from './model-catalog';
import { parsePlan, type Plan } from './plan';
import { SpecError } from './validation';

/**
 * Writes a file atomically (a temporary file in its folder renamed over it, the folder made when
 * missing), so that a reader meanwhile sees the old file or the new one, never a part.
 */
export function writeFileAtomic(file: string, content: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}

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

/** A reference meant as a file (by its extension) that does not exist is reported as a file, not a name. */
function isMissingSpecFile(ref: string): boolean {
  return /\.(json|ya?ml)$/i.test(ref) && !fs.existsSync(ref);
}

/**
 * The name of a model read from a Hugging Face config, in this order: the config's own
 * `_name_or_path` (its last path part when it is a local path), then the directory of a file named
 * `config.json` (the Hub's layout: `Llama-2-7b-hf/config.json`), then the file's own name less its
 * extension (`mistral.json` -> `mistral`).
 */
export function huggingFaceModelName(cfg: Record<string, unknown>, file: string): string {
  const own = typeof cfg._name_or_path === 'string' ? cfg._name_or_path.trim() : '';
  if (own) return path.isAbsolute(own) || own.startsWith('.') ? path.basename(own) : own;
  const resolved = path.resolve(file);
  if (path.basename(resolved).toLowerCase() === 'config.json') return path.basename(path.dirname(resolved));
  return path.basename(resolved, path.extname(resolved));
}

/**
 * Our model file as `mist models --json` prints it: one object, or a list holding exactly one. The
 * `params` count that listing adds is derived, so it is dropped (and recomputed) here.
 */
function modelFileSpec(data: unknown, file: string): unknown {
  let doc = data;
  if (Array.isArray(doc)) {
    if (doc.length !== 1) {
      const names = doc.map((m) => (m && typeof m === 'object' ? String((m as { name?: unknown }).name) : '?')).join(', ');
      throw new SpecError('model file', [{
        field: '(document)', value: `a list of ${doc.length} models`,
        message: `expected one model (${file} holds ${names || 'none'}); write one with \`mist models --model NAME --json > FILE\``,
      }]);
    }
    doc = doc[0];
  }
  // `mist models --json` adds the derived counts: they are dropped when the file is read back.
  if (doc && typeof doc === 'object' && typeof (doc as { params?: unknown }).params === 'number') {
    const { params: _derived, activeParams: _active, ...rest } = doc as Record<string, unknown>;
    return rest;
  }
  return doc;
}

/** A model by catalog name (forgiving case and vendor spellings), our model file (JSON/YAML) or a Hugging Face config.json. */
export function loadModel(ref: string): ModelSpec {
  if (isMissingSpecFile(ref)) readSpecFile(ref);
  if (!looksLikeFile(ref)) return getModel(ref);
  const data = readSpecFile(ref);
  if (data && typeof data === 'object' && ('model_type' in data || 'num_hidden_layers' in data || 'n_layer' in data)) {
    const cfg = data as Record<string, unknown>;
    return modelFromHuggingFace({ ...cfg, _name_or_path: huggingFaceModelName(cfg, ref) });
  }
  return parseModelSpec(modelFileSpec(data, ref));
}

/** A cluster by shorthand (`2x8-a100-40gb`, forgiving `1x8-L4`) or a cluster file (full ClusterSpec or the short form). */
export function loadCluster(ref: string): ClusterSpec {
  if (isMissingSpecFile(ref)) readSpecFile(ref);
  if (looksLikeFile(ref)) return clusterFromDocument(readSpecFile(ref));
  return parseClusterShorthand(ref);
}

export function loadPlan(file: string, ctx: { model?: ModelSpec; cluster?: ClusterSpec } = {}): Plan {
  return parsePlan(readSpecFile(file), ctx);
}

export function loadHardwareProfile(file: string): HardwareProfile {
  return parseHardwareProfile(readSpecFile(file));
}
