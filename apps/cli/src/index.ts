// @mist/app-cli: the `mist` command, also callable in-process (tests, scripts).
export { main, allCommands } from './main';
export type { Command, CliIo } from './cli/command';
