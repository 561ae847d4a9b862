// @mist/app-coordinator: the coordinator server process (`mist coordinator`).
export { COORDINATOR_CLI_OPTIONS, loggerFromArgs, runCoordinator, startFromArgs, type CliOption, type RunCoordinatorOptions } from './run-coordinator';
export { addPlanningServices, analyzerHandlers, profilerHandlers, tunerHandlers } from './services/planning-services';
export { dialAddress, type DashboardOptions, type RunningDashboard, startDashboard } from './dashboard/http-server';
