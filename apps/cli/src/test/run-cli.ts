// Runs `mist` in-process with captured output, for the CLI's tests.
import { main } from '../main';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: (t) => { stdout += t; },
    stderr: (t) => { stderr += t; },
    isTTY: false,
  });
  return { code, stdout, stderr };
}
