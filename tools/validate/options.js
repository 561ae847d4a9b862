// The command-line options of the validation scripts: `parse` (their node:util parseArgs call, with a
// `help` option) run with --help printing the usage (exit 0), and an unknown or malformed option named
// with the usage (exit 2) instead of a stack trace.
'use strict';

/**
 * @template T
 * @param {string} name the script's name, for messages
 * @param {string} usage what --help prints
 * @param {() => { values: T }} parse
 * @returns {T}
 */
function parseOptions(name, usage, parse) {
  let values;
  try {
    ({ values } = parse());
  } catch (err) {
    console.error(`${name}: ${err instanceof Error ? err.message : String(err)}\n${usage}`);
    process.exit(2);
  }
  if (/** @type {Record<string, unknown>} */ (values).help) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

/** The --help option every validation script takes. */
const HELP_OPTION = { help: { type: /** @type {const} */ ('boolean'), short: 'h' } };

module.exports = { HELP_OPTION, parseOptions };
