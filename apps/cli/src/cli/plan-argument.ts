// The plan file of a command, given either way: `mist analyze PLAN.json` or `mist analyze --plan PLAN.json`
// (and the same for validate), so the two commands read alike.
import { type ParsedValues, stringOpt, UsageError } from './command';

export function optionalPlanArgument(values: ParsedValues, positionals: string[]): string | undefined {
  const flag = stringOpt(values, 'plan');
  const given = positionals[0];
  if (flag !== undefined && given !== undefined && flag !== given) {
    throw new UsageError(`two plans given (${given} and --plan ${flag}); give one`);
  }
  return flag ?? given;
}

export function planArgument(values: ParsedValues, positionals: string[]): string {
  const file = optionalPlanArgument(values, positionals);
  if (file === undefined) throw new UsageError('a plan file is required: PLAN.json or --plan PLAN.json');
  return file;
}
