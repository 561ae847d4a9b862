// Every `mist` sub-command, one export per line (main.ts lists them all, sorted by name).
export { modelsCommand } from './models';
export { gpusCommand } from './gpus';
export { clusterCommand } from './cluster';
export { validateCommand } from './validate';
export { analyzeCommand } from './analyze';
export { tuneCommand } from './tune';
export { trainCommand } from './train';
export { coordinatorCommand } from './coordinator';
export { agentCommand } from './agent';
export { launchCommand } from './launch';
export { statusCommand, agentsCommand } from './status';
export { logsCommand } from './logs';
export { cancelCommand } from './cancel';
export { profileCommand } from './profile';
export { demoCommand } from './demo';
export { rmCommand } from './rm';
export { exportCommand } from './export';
export { importCommand } from './import';
