// @ferry/coordinator: the logic of the migration-coordinator service.
export * from './coordinator';
export * from './admission';
export * from './phases';
export * from './options';
export * from './failures';
export * from './journal';
export * from './migration-list';
export * from './precopy-policy';
export * from './round-reporter';
export * from './tracing';
export { DEFAULT_TIMING, type StepTiming } from './steps';
export { newMigrationId } from './ids';
