// The proto-loader options used at runtime. They come from proto-options.json, which
// scripts/gen.js also reads to generate the types: one source, so the types match what arrives.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Options } from '@grpc/proto-loader';
import { PACKAGE_ROOT, protosDir } from './paths';

interface OptionsFile {
  keepCase: boolean;
  longs: 'Number' | 'String';
  enums: 'String';
  defaults: boolean;
  oneofs: boolean;
}

function readOptionsFile(): OptionsFile {
  const file = path.join(PACKAGE_ROOT, 'proto-options.json');
  const data = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<OptionsFile>;
  const { keepCase, longs, enums, defaults, oneofs } = data;
  if (typeof keepCase !== 'boolean' || (longs !== 'Number' && longs !== 'String') || enums !== 'String'
    || typeof defaults !== 'boolean' || typeof oneofs !== 'boolean') {
    throw new Error(`${file}: expected keepCase, longs ("Number"|"String"), enums ("String"), defaults, oneofs`);
  }
  return { keepCase, longs, enums, defaults, oneofs };
}

export function loaderOptions(): Options {
  const o = readOptionsFile();
  return {
    keepCase: o.keepCase,
    longs: o.longs === 'Number' ? Number : String,
    enums: String,
    defaults: o.defaults,
    oneofs: o.oneofs,
    includeDirs: [protosDir()],
  };
}
