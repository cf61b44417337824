// @ferry/migration-coordinator: the coordinator process (main.ts) and its gRPC adapter, for
// in-process use (telemetry is started by main.ts only).
export { migrationService, startMigrationServer } from './server';
