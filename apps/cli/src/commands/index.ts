// Every `mist` sub-command, one export per line (main.ts lists them all, sorted by name).
export { modelsCommand } from './models';
export { gpusCommand } from './gpus';
export { validateCommand } from './validate';
export { analyzeCommand } from './analyze';
export { trainCommand } from './train';
export { tuneCommand } from './tune';
export { profileCommand } from './profile';
