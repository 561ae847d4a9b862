// Where the contracts live. Both src/ (tests run the TypeScript) and dist/ (the build) sit directly
// under the package root, so one relative step up works from either; protos/ is at the repo root.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** packages/rpc */
export const PACKAGE_ROOT = path.resolve(__dirname, '..');

/** Sub-folder of protos/ holding this API version's files (proto package `mist.v1`). */
export const PROTO_SUBDIR = 'mist/v1';

/** The include root of the .proto files (imports are written `mist/v1/common.proto`). */
export function protosDir(): string {
  const dir = path.resolve(PACKAGE_ROOT, '../../protos');
  if (!fs.existsSync(path.join(dir, PROTO_SUBDIR, 'common.proto'))) {
    throw new Error(`Mist protos not found: expected ${path.join(dir, PROTO_SUBDIR)}/*.proto (resolved from ${PACKAGE_ROOT})`);
  }
  return dir;
}

/** Every .proto file of the API, relative to protosDir(), sorted. */
export function protoFiles(): string[] {
  const dir = path.join(protosDir(), PROTO_SUBDIR);
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.proto'))
    .sort()
    .map((f) => `${PROTO_SUBDIR}/${f}`);
}
